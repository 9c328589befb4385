//! The change bell of an embedded store: a counter in a small file
//! (`hub.bell`, beside the database) that every process with the store open
//! maps into its memory. A commit that changes objects or unique claims
//! rings it (adds one) after it commits; before answering, a store compares
//! the bell with what it last heard — one memory read — and only when it
//! moved asks SQLite for the changes. (`PRAGMA data_version`, the check it
//! replaces, costs a lock and an unlock of the database file per request.)
//!
//! A write is acknowledged only after its bell, so a request that arrives
//! after the acknowledgement sees it. A process killed between its commit
//! and its bell acknowledged nothing; its change shows with the next ring.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

pub struct Bell {
    counter: *const AtomicU64,
}

// SAFETY: the mapping lives as long as the `Bell` (unmapped in `drop`), and
// every access to it goes through an atomic.
unsafe impl Send for Bell {}
unsafe impl Sync for Bell {}

const SIZE: usize = std::mem::size_of::<AtomicU64>();

impl Bell {
    /// Map the bell of the store in `dir` (created, 0600, if missing).
    #[cfg(unix)]
    pub fn open(dir: &Path) -> std::io::Result<Bell> {
        use std::os::fd::AsRawFd;
        let path = super::private_file(dir, "hub.bell")?;
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        // Extending a file that is already long enough changes nothing, so
        // two processes opening a new bell at once agree on it.
        if file.metadata()?.len() < SIZE as u64 {
            file.set_len(SIZE as u64)?;
        }
        // SAFETY: a fresh shared mapping of the first bytes of a file at
        // least that long; the descriptor may close after mapping.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                SIZE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        // A mapping is page-aligned, so the counter is aligned.
        Ok(Bell {
            counter: ptr as *const AtomicU64,
        })
    }

    #[cfg(not(unix))]
    pub fn open(_dir: &Path) -> std::io::Result<Bell> {
        Err(std::io::Error::other("no shared mapping on this platform"))
    }

    fn counter(&self) -> &AtomicU64 {
        // SAFETY: mapped, aligned and alive while `self` is (see `open`).
        unsafe { &*self.counter }
    }

    /// After a commit: tell every process.
    pub fn ring(&self) {
        self.counter().fetch_add(1, Ordering::SeqCst);
    }

    /// How many times it has rung, by any process.
    pub fn rung(&self) -> u64 {
        self.counter().load(Ordering::SeqCst)
    }
}

impl Drop for Bell {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: the mapping made in `open`, unmapped once.
        unsafe {
            libc::munmap(self.counter as *mut libc::c_void, SIZE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_of_one_bell_hear_each_other() {
        let dir = std::env::temp_dir().join(format!("hub-bell-{}", std::process::id()));
        let a = Bell::open(&dir).unwrap();
        let b = Bell::open(&dir).unwrap();
        let before = b.rung();
        a.ring();
        a.ring();
        assert_eq!(b.rung(), before + 2);
        drop(a);
        b.ring();
        assert_eq!(Bell::open(&dir).unwrap().rung(), before + 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
