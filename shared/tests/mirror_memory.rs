//! The embedded store's in-memory mirror: the Rust heap it holds per
//! patient (counted by a global allocator; SQLite's own allocations are not
//! Rust's and are not counted), for patients like bench/load.py's (about
//! 0.6 KB of JSON), written and then read back by a fresh store over the
//! same directory. `bench/memory.sh` measures the whole process.

use hub::store::embedded::EmbeddedStore;
use hub::store::{Expect, Store, WriteOp, WriteTx};
use serde_json::json;
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const N: usize = 2000;
/// Bytes of Rust heap per patient the mirror may hold.
/// Packed, a patient of about 0.6 KB of JSON takes about 0.7 KB (5 KB as a
/// parsed `serde_json::Value`).
const LIMIT: isize = 1024;

fn patient(i: usize) -> serde_json::Value {
    let first = ["Ann", "Bob", "Cara", "Dev", "Eve", "Finn", "Gita", "Hugo"][i % 8];
    json!({
        "id": format!("pat_{i:026}"), "object": "patient",
        "fullName": format!("{first} Smith {i}"), "primaryPhoneNumber": format!("07700 9{:05}", i % 100000),
        "emailAddress": format!("p{i}@example.com"), "dob": "1970-01-01", "age": 20 + i % 70,
        "gender": "female",
        "address": {"line1": format!("{} High Street", i % 200), "city": "Leeds", "postcode": "LS1 1AA", "country": "GBR"},
        "tracking": {"source": "google", "campaign": format!("c{}", i % 5)},
        "primaryClinicId": "cli_01M96EJW40DF465Q62RJG8YJG6", "statusId": "pst_01M96EJW4M03BTPPQD3J9WCQJ9",
        "referralId": "ref_01M96EJW4K8SRMQMVX3PMP7H77", "membershipStatus": "inactive", "metadata": {},
        "livemode": false, "createdAt": "2026-12-06T19:51:36.000Z", "updatedAt": "2026-12-06T19:51:36.000Z",
        "version": 1,
    })
}

async fn put_all(store: &EmbeddedStore, from: usize, to: usize) {
    for i in from..to {
        let op = WriteOp::Put {
            tenant: "org_mem#test".into(),
            kind: "patients",
            id: format!("pat_{i:026}"),
            doc: patient(i),
            expect: Expect::Absent,
        };
        store.commit(WriteTx::of(vec![op])).await.unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn the_mirror_holds_under_a_kilobyte_per_patient() {
    let dir = std::env::temp_dir().join(format!("hub-mirror-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kinds = hub::resources::kinds;
    // Written: the store that wrote them.
    let store = EmbeddedStore::open(&dir, kinds()).unwrap();
    put_all(&store, 0, 100).await;
    let before = LIVE.load(Ordering::Relaxed);
    put_all(&store, 100, 100 + N).await;
    let written = (LIVE.load(Ordering::Relaxed) - before) / N as isize;
    drop(store);
    // Read back: a fresh store over the same directory loads them all.
    let before = LIVE.load(Ordering::Relaxed);
    let fresh = EmbeddedStore::open(&dir, kinds()).unwrap();
    let loaded = (LIVE.load(Ordering::Relaxed) - before) / (N + 100) as isize;
    let all = fresh.all("org_mem#test", "patients").await.unwrap();
    assert_eq!(all.len(), N + 100);
    assert_eq!(*all[7], patient(7), "the same documents, in the same order");
    drop(all);
    drop(fresh);
    let _ = std::fs::remove_dir_all(&dir);
    println!("Rust heap per patient: {written} B written, {loaded} B loaded");
    assert!(
        written <= LIMIT,
        "{written} B per written patient (limit {LIMIT})"
    );
    assert!(
        loaded <= LIMIT,
        "{loaded} B per loaded patient (limit {LIMIT})"
    );
}
