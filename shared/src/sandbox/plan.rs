//! The sandbox dataset: "St. Mungo's Clinic", a UK hearing and health clinic
//! group with sites in London, Manchester and Leeds. Deterministic: a
//! fixed-seed splitmix64 generator written here, so every run on every
//! platform gives the same data.
//!
//! Items refer to earlier ones with strings of the exact form `"@key"`, which
//! the loader replaces with the ids it created. No other string in the plan
//! starts with `@`.
//!
//! What the data promises:
//! - a patient's `age`, when given together with `dob`, is the age on
//!   2026-01-01 (`AGE_ON`); every age is from 18 to 95;
//! - phone numbers are in Ofcom's ranges reserved for drama (07700 900xxx,
//!   020 7946 0xxx, 0113 496 0xxx, 01632 960xxx, …), email addresses use the
//!   reserved example.com/.org/.net domains, `medicalNumber`s are in the NHS
//!   test range (999 …) with a valid check digit, and `barcodeId`s are
//!   in-store EAN-13s (prefix 20): none belongs to a real person;
//! - `referralName` and `statusName` may differ in letter case from the
//!   object's name (they resolve case-insensitively); `primaryClinicName` is
//!   always the clinic's exact name.

use serde_json::{json, Map, Value};
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq)]
pub struct SeedItem {
    pub resource: &'static str,
    pub key: String,
    pub body: Value,
}

type Date = (i64, u32, u32);

/// The day a given `age` is counted on.
const AGE_ON: Date = (2026, 1, 1);

const SEED: u64 = 0x5EED_0F5A_1417_C11C;

/// splitmix64: small, fast, and the same on every platform.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// 0..n (n > 0).
    pub(super) fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn weighted<'a, T>(&mut self, items: &'a [T], weight: impl Fn(&T) -> usize) -> &'a T {
        let total: usize = items.iter().map(&weight).sum();
        let mut r = self.below(total);
        for item in items {
            let w = weight(item);
            if r < w {
                return item;
            }
            r -= w;
        }
        &items[items.len() - 1]
    }

    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn alnum(&mut self, n: usize) -> String {
        const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        (0..n).map(|_| char::from(*self.pick(CHARS))).collect()
    }
}

fn digit(d: usize) -> char {
    char::from(b'0' + (d % 10) as u8)
}

struct ClinicSeed {
    key: &'static str,
    name: &'static str,
    line1: &'static str,
    line2: Option<&'static str>,
    city: &'static str,
    region: &'static str,
    postcode: &'static str,
    phone: &'static str,
    metadata: &'static [(&'static str, &'static str)],
}

const CLINICS: &[ClinicSeed] = &[
    ClinicSeed {
        key: "london",
        name: "St. Mungo's Clinic – London",
        line1: "12 Harley Street",
        line2: Some("Second Floor"),
        city: "London",
        region: "Greater London",
        postcode: "W1G 9PF",
        phone: "+44 20 7946 0321",
        metadata: &[("siteCode", "LDN"), ("opened", "2009")],
    },
    ClinicSeed {
        key: "manchester",
        name: "St. Mungo's Clinic – Manchester",
        line1: "48 Deansgate",
        line2: None,
        city: "Manchester",
        region: "Greater Manchester",
        postcode: "M3 2EG",
        phone: "0161 496 0750",
        metadata: &[("siteCode", "MAN"), ("parking", "NCP Deansgate North")],
    },
    ClinicSeed {
        key: "leeds",
        name: "St. Mungo's Clinic – Leeds",
        line1: "3 Park Square East",
        line2: Some("Suite 4"),
        city: "Leeds",
        region: "West Yorkshire",
        postcode: "LS1 2NE",
        phone: "0113 496 0042",
        metadata: &[],
    },
];

/// fullName, role, email, clinics.
const PRACTITIONERS: &[(&str, &str, Option<&str>, &[&str])] = &[
    (
        "Dr Hippocrates Smethwyck",
        "ENT consultant",
        Some("h.smethwyck@stmungos.example.com"),
        &["london", "manchester"],
    ),
    (
        "Augustus Pye",
        "audiologist",
        Some("augustus.pye@stmungos.example.com"),
        &["london"],
    ),
    (
        "Miriam Strout",
        "audiologist",
        Some("miriam.strout@stmungos.example.com"),
        &["manchester"],
    ),
    (
        "Dr Priya Raman",
        "audiologist",
        Some("priya.raman@stmungos.example.com"),
        &["leeds", "manchester"],
    ),
    (
        "Owen Pritchard",
        "hearing aid dispenser",
        Some("owen.pritchard@stmungos.example.com"),
        &["leeds"],
    ),
    (
        "Gráinne O'Connell",
        "hearing aid dispenser",
        Some("grainne.oconnell@stmungos.example.com"),
        &["london", "leeds"],
    ),
    (
        "Tomasz Nowak",
        "receptionist",
        Some("reception.manchester@stmungos.example.com"),
        &["manchester"],
    ),
    (
        "Lucy Ashworth",
        "receptionist",
        None,
        &["london", "manchester", "leeds"],
    ),
];

/// key, name, weight among patients.
const REFERRALS: &[(&str, &str, usize)] = &[
    ("google", "Google", 30),
    ("facebook", "Facebook", 18),
    ("gp", "GP referral", 20),
    ("wom", "Word of mouth", 15),
    ("walkin", "Walk-in", 9),
    ("newspaper", "Newspaper", 8),
    // Weight 0: the default of web bookings (patients::WEB_REFERRAL), no
    // seeded patient has it.
    ("website", "Website", 0),
];

/// key, name, weight among patients; `order` is the position.
const STATUSES: &[(&str, &str, usize)] = &[
    ("enquiry", "New enquiry", 12),
    ("created", "Patient Created", 10),
    ("booked", "Appointment booked", 15),
    ("active", "Active", 28),
    ("fitted", "Hearing aid fitted", 22),
    ("lapsed", "Lapsed", 13),
];

/// Appointment types of a hearing clinic: key, name, minutes, price (pence).
pub(super) const APPOINTMENT_TYPES: &[(&str, &str, i64, i64)] = &[
    ("screening", "Free hearing screening", 15, 0),
    ("test", "Full hearing test", 45, 7_500),
    ("fitting", "Hearing aid fitting", 60, 0),
    ("followup", "Follow-up appointment", 30, 2_500),
    ("wax", "Ear wax removal", 30, 6_000),
    ("tinnitus", "Tinnitus consultation", 60, 12_000),
];

/// The number of practitioners in the plan.
pub(super) fn practitioner_count() -> usize {
    PRACTITIONERS.len()
}

/// When practitioner `i` (0-based) works: (clinic key, weekday 0 = Monday,
/// start hour, end hour), in the clinic's local time. One clinic: Monday to
/// Friday; two: the first on Monday, Wednesday and Friday, the second on
/// Tuesday and Thursday; every third practitioner also on Saturday mornings.
pub(super) fn working_days(i: usize) -> Vec<(&'static str, i8, u32, u32)> {
    let clinics = PRACTITIONERS[i].3;
    let mut out = Vec::new();
    for day in 0..5i8 {
        let clinic = match clinics {
            [one] => *one,
            [first, second, ..] => {
                if day % 2 == 0 {
                    *first
                } else {
                    *second
                }
            }
            [] => continue,
        };
        out.push((clinic, day, 9, 17));
    }
    if i.is_multiple_of(3) {
        if let Some(first) = clinics.first() {
            out.push((*first, 5, 9, 13));
        }
    }
    out
}

use crate::resources::DAYS as WEEKDAYS;

struct Town {
    city: &'static str,
    region: &'static str,
    districts: &'static [&'static str],
    /// Drama-range landline prefix; three digits complete it.
    landline: &'static str,
    clinic: &'static str,
    weight: usize,
}

const TOWNS: &[Town] = &[
    Town {
        city: "London",
        region: "Greater London",
        districts: &[
            "SW11", "SW19", "N1", "N16", "E8", "SE15", "NW3", "W5", "EC1V",
        ],
        landline: "020 7946 0",
        clinic: "london",
        weight: 16,
    },
    Town {
        city: "Manchester",
        region: "Greater Manchester",
        districts: &["M1", "M4", "M14", "M20", "M21"],
        landline: "0161 496 0",
        clinic: "manchester",
        weight: 10,
    },
    Town {
        city: "Salford",
        region: "Greater Manchester",
        districts: &["M5", "M6", "M7"],
        landline: "0161 496 0",
        clinic: "manchester",
        weight: 3,
    },
    Town {
        city: "Leeds",
        region: "West Yorkshire",
        districts: &["LS1", "LS6", "LS8", "LS17"],
        landline: "0113 496 0",
        clinic: "leeds",
        weight: 9,
    },
    Town {
        city: "Bradford",
        region: "West Yorkshire",
        districts: &["BD1", "BD3", "BD9"],
        landline: "01632 960",
        clinic: "leeds",
        weight: 3,
    },
    Town {
        city: "York",
        region: "North Yorkshire",
        districts: &["YO1", "YO10", "YO24", "YO31"],
        landline: "01632 960",
        clinic: "leeds",
        weight: 4,
    },
    Town {
        city: "Sheffield",
        region: "South Yorkshire",
        districts: &["S1", "S7", "S10", "S11"],
        landline: "0114 496 0",
        clinic: "manchester",
        weight: 3,
    },
    Town {
        city: "Bristol",
        region: "Bristol",
        districts: &["BS1", "BS6", "BS8", "BS16"],
        landline: "0117 496 0",
        clinic: "london",
        weight: 4,
    },
    Town {
        city: "Brighton",
        region: "East Sussex",
        districts: &["BN1", "BN2", "BN3"],
        landline: "01632 960",
        clinic: "london",
        weight: 3,
    },
];

/// Patients whose first name is fixed, so that the names with diacritics
/// that search must handle are always there: number, name, female.
const FIXED_FIRST_NAMES: &[(usize, &str, bool)] =
    &[(5, "Zoë", true), (18, "José", false), (33, "Siobhán", true)];
const FEMALE: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Grace", "Sophie", "Emily", "Margaret", "Patricia",
    "Siobhán", "Zoë", "Aisha", "Priya", "Hannah", "Eleanor", "Joan", "Maureen", "Fatima", "Chloé",
    "Niamh", "Beryl", "Dorothy", "Sandra", "Gwen",
];
const MALE: &[&str] = &[
    "Oliver", "George", "Harry", "Jack", "Noah", "Arthur", "William", "James", "Thomas", "David",
    "José", "Mohammed", "Raj", "Seán", "Peter", "Kenneth", "Brian", "Colin", "Dylan", "Rhys",
    "Ciarán", "Derek", "Stanley", "Tariq",
];
/// Common surnames appear more than once, so that several patients share one.
const SURNAMES: &[&str] = &[
    "Smith",
    "Smith",
    "Jones",
    "Jones",
    "Taylor",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Patel",
    "Wright",
    "Evans",
    "Thomas",
    "Roberts",
    "Khan",
    "Walker",
    "O'Brien",
    "Murphy",
    "Hughes",
    "Edwards",
    "Green",
    "Hall",
    "Wood",
    "Clarke",
    "Jackson",
    "Singh",
    "Ahmed",
    "Kowalski",
    "Nguyen",
    "Ashworth-Hale",
    "MacLeod",
    "Okafor",
];
const STREETS: &[&str] = &[
    "High Street",
    "Station Road",
    "Church Lane",
    "Victoria Road",
    "Park Avenue",
    "Mill Lane",
    "Queen's Road",
    "The Crescent",
    "Manor Way",
    "Elm Grove",
    "Kings Road",
    "Orchard Close",
    "St Mary's Walk",
    "Beech Drive",
];
/// Letters used in the inward part of real UK postcodes.
const INWARD_LETTERS: &[u8] = b"ABDEFGHJLNPQRSTUWXYZ";
/// A note, and whether it suits only people of working age.
const NOTES: &[(&str, bool)] = &[
    (
        "Reports difficulty following conversations in noisy restaurants.",
        false,
    ),
    (
        "Tinnitus in the left ear since a concert in 2019; worse at night.",
        true,
    ),
    (
        "Existing hearing aid user, wants a second opinion on rechargeable models.",
        false,
    ),
    ("Referred after a failed workplace hearing screening.", true),
    (
        "Prefers morning appointments; hard of hearing on the telephone, please email.",
        false,
    ),
    ("Family history of age-related hearing loss.", false),
    (
        "Wax build-up noted at last visit; microsuction recommended.",
        false,
    ),
    ("Interested in discreet in-the-canal hearing aids.", false),
    (
        "Sudden hearing loss in the right ear two weeks ago, urgent ENT review requested.",
        false,
    ),
    ("Musician, wants custom-moulded hearing protection.", true),
    (
        "Type 2 diabetes; annual hearing check advised by GP.",
        false,
    ),
    ("Family say the television is always too loud.", false),
    (
        "Dizziness and a feeling of fullness in the right ear; possible Ménière's.",
        false,
    ),
    (
        "Uses a cochlear implant on the left; review of the right-ear aid only.",
        false,
    ),
];
const BRANDS: &[(&str, &[&str])] = &[
    ("Phonak", &["Audéo Lumity", "Audéo Sphere", "Naída Lumity"]),
    ("Oticon", &["Intent", "Real", "Own"]),
    ("Signia", &["Pure Charge&Go IX", "Styletto IX"]),
    ("Widex", &["Moment Sheer", "SmartRIC"]),
    ("ReSound", &["Nexia", "Omnia"]),
    ("Starkey", &["Genesis AI", "Edge AI"]),
];
const LANDING_PAGES: &[&str] = &[
    "/book-a-hearing-test",
    "/tinnitus",
    "/hearing-aids/rechargeable",
    "/ear-wax-removal",
    "/",
];
const EMAIL_DOMAINS: &[&str] = &["example.com", "example.org", "example.net"];

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn format_date((y, m, d): Date) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// Whole years from `born` to `on`.
fn age_on(born: Date, on: Date) -> i64 {
    let years = on.0 - born.0;
    if (on.1, on.2) < (born.1, born.2) {
        years - 1
    } else {
        years
    }
}

fn random_day(rng: &mut Rng, y: i64) -> Date {
    let m = 1 + rng.below(12) as u32;
    let d = 1 + rng.below(days_in_month(y, m) as usize) as u32;
    (y, m, d)
}

/// Lower-case ASCII for an email address: accents folded, apostrophes and
/// spaces dropped.
fn fold(s: &str) -> String {
    s.chars()
        .flat_map(char::to_lowercase)
        .filter_map(|c| match c {
            'á' | 'à' | 'â' | 'ä' => Some('a'),
            'é' | 'è' | 'ê' | 'ë' => Some('e'),
            'í' | 'ì' | 'ï' => Some('i'),
            'ó' | 'ò' | 'ö' => Some('o'),
            'ú' | 'ù' | 'ü' => Some('u'),
            c if c.is_ascii_alphanumeric() || c == '-' => Some(c),
            _ => None,
        })
        .collect()
}

/// A ten-digit number in the NHS test range (999…) with a valid modulus-11
/// check digit, written "999 123 4567".
fn nhs_number(rng: &mut Rng) -> String {
    loop {
        let mut d: Vec<usize> = vec![9, 9, 9];
        d.extend((0..6).map(|_| rng.below(10)));
        let sum: usize = d.iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
        let check = (11 - sum % 11) % 11;
        if check == 10 {
            continue;
        }
        d.push(check);
        let s: String = d.into_iter().map(digit).collect();
        return format!("{} {} {}", &s[..3], &s[3..6], &s[6..]);
    }
}

/// A 13-digit in-store EAN (prefix 20) with its check digit.
fn barcode(rng: &mut Rng) -> String {
    let mut d: Vec<usize> = vec![2, 0];
    d.extend((0..10).map(|_| rng.below(10)));
    let sum: usize = d
        .iter()
        .enumerate()
        .map(|(i, x)| if i % 2 == 0 { *x } else { 3 * x })
        .sum();
    d.push((10 - sum % 10) % 10);
    d.into_iter().map(digit).collect()
}

/// Values that must not repeat across the patients.
#[derive(Default)]
struct Used {
    names: HashSet<String>,
    emails: HashSet<String>,
    phones: HashSet<String>,
    barcodes: HashSet<String>,
}

impl Used {
    /// A drama-range mobile (07700 900000–900999) not used before, as its six
    /// subscriber digits.
    fn mobile(&mut self, rng: &mut Rng) -> String {
        loop {
            let tail = format!("{:03}", rng.below(1000));
            if self.phones.insert(format!("07700900{tail}")) {
                return format!("900{tail}");
            }
        }
    }

    fn landline(&mut self, rng: &mut Rng, prefix: &str) -> String {
        loop {
            let number = format!("{prefix}{:03}", rng.below(1000));
            if self.phones.insert(number.replace(' ', "")) {
                return number;
            }
        }
    }
}

/// A mobile written the ways people write them.
fn mobile_style(rng: &mut Rng, six: &str) -> String {
    match rng.below(10) {
        0..=4 => format!("07700 {six}"),
        5..=7 => format!("+447700{six}"),
        _ => format!("07700{six}"),
    }
}

fn put(map: &mut Map<String, Value>, key: &str, value: impl Into<Value>) {
    map.insert(key.to_string(), value.into());
}

fn tracking(rng: &mut Rng, referral: &str) -> Value {
    let mut t = Map::new();
    match referral {
        "google" if rng.chance(75) => {
            put(&mut t, "source", "google");
            put(&mut t, "medium", "cpc");
            let campaign = rng.pick(&[
                "winter-hearing-check",
                "tinnitus-relief",
                "free-hearing-test",
            ]);
            put(&mut t, "campaign", *campaign);
            let term = rng.pick(&[
                "hearing test near me",
                "hearing aids",
                "tinnitus clinic",
                "ear wax removal",
            ]);
            put(&mut t, "term", *term);
            if rng.chance(60) {
                put(&mut t, "landingPage", *rng.pick(LANDING_PAGES));
            }
            if rng.chance(70) {
                put(&mut t, "gclid", format!("Cj0KCQiA{}", rng.alnum(24)));
            }
        }
        "google" => {
            put(&mut t, "source", "google");
            put(&mut t, "medium", "organic");
            put(&mut t, "landingPage", *rng.pick(LANDING_PAGES));
        }
        "facebook" => {
            put(&mut t, "source", "facebook");
            put(&mut t, "medium", "paid-social");
            put(&mut t, "campaign", "free-hearing-test");
            let content = rng.pick(&["carousel-a", "video-30s", "testimonial-margaret"]);
            put(&mut t, "content", *content);
            if rng.chance(60) {
                put(&mut t, "fbclid", format!("IwAR{}", rng.alnum(28)));
            }
        }
        "newspaper" if rng.chance(60) => {
            let paper = rng.pick(&["yorkshire-post", "manchester-evening-news", "metro"]);
            put(&mut t, "source", *paper);
            put(&mut t, "medium", "print");
            put(&mut t, "campaign", "hearing-awareness-week");
        }
        "wom" if rng.chance(25) => {
            put(&mut t, "source", "referral-card");
            put(&mut t, "medium", "offline");
        }
        _ => {}
    }
    Value::Object(t)
}

fn patient(rng: &mut Rng, n: usize, used: &mut Used) -> Value {
    let fixed = FIXED_FIRST_NAMES.iter().find(|f| f.0 == n);
    let female = fixed.map_or_else(|| rng.chance(55), |f| f.2);
    let (first, last) = loop {
        let first = match fixed {
            Some(f) => f.1,
            None => *rng.pick(if female { FEMALE } else { MALE }),
        };
        let last = *rng.pick(SURNAMES);
        if used.names.insert(format!("{first} {last}")) {
            break (first, last);
        }
    };
    // Hearing clinics see more older people: the larger of two draws.
    let age = 18 + rng.below(78).max(rng.below(78)) as i64;
    let born = {
        let (y, m, d) = random_day(rng, AGE_ON.0 - 1 - age);
        // Only 1 January makes the age one more; 1 January exists every year.
        if age_on((y, m, d), AGE_ON) == age {
            (y, m, d)
        } else {
            (y + 1, m, d)
        }
    };
    let town = rng.weighted(TOWNS, |t| t.weight);
    let (referral, referral_name, _) = *rng.weighted(REFERRALS, |r| r.2);
    let (status, status_name, _) = *rng.weighted(STATUSES, |s| s.2);
    let clinic = if rng.chance(85) {
        CLINICS
            .iter()
            .find(|c| c.key == town.clinic)
            .unwrap_or(&CLINICS[0])
    } else {
        rng.pick(CLINICS)
    };
    let gender = if rng.chance(90) {
        Some(match rng.below(100) {
            0..=3 => "non-binary",
            4..=6 => "unknown",
            _ if female => "female",
            _ => "male",
        })
    } else {
        None
    };

    let mut p = Map::new();
    if rng.chance(70) && !matches!(gender, Some("non-binary" | "unknown")) {
        let title = if rng.chance(6) {
            "Dr"
        } else if female && age < 30 {
            *rng.pick(&["Miss", "Ms"])
        } else if female {
            *rng.pick(&["Mrs", "Mrs", "Ms", "Miss"])
        } else {
            "Mr"
        };
        put(&mut p, "title", title);
    }
    put(&mut p, "fullName", format!("{first} {last}"));

    let mut address = Map::new();
    put(
        &mut address,
        "line1",
        format!("{} {}", 1 + rng.below(180), rng.pick(STREETS)),
    );
    if rng.chance(30) {
        let flat = rng.pick(&["Flat", "Flat", "Apartment"]);
        put(
            &mut address,
            "line2",
            format!("{flat} {}", 1 + rng.below(40)),
        );
    }
    put(&mut address, "city", town.city);
    if rng.chance(75) {
        put(&mut address, "region", town.region);
    }
    let postcode = format!(
        "{} {}{}{}",
        rng.pick(town.districts),
        rng.below(10),
        char::from(*rng.pick(INWARD_LETTERS)),
        char::from(*rng.pick(INWARD_LETTERS)),
    );
    put(&mut address, "postcode", postcode);
    put(&mut address, "country", "GBR");
    put(&mut p, "address", Value::Object(address));

    // Older patients more often give a landline first.
    let landline_first = rng.chance(if age >= 70 { 40 } else { 10 });
    let mobile = used.mobile(rng);
    let mobile = mobile_style(rng, &mobile);
    if landline_first {
        let landline = used.landline(rng, town.landline);
        put(&mut p, "primaryPhoneNumber", landline);
        if rng.chance(60) {
            put(&mut p, "secondaryPhoneNumber", mobile);
        }
    } else {
        put(&mut p, "primaryPhoneNumber", mobile);
        if rng.chance(20) {
            let landline = used.landline(rng, town.landline);
            put(&mut p, "secondaryPhoneNumber", landline);
        }
    }

    if rng.chance(if age >= 80 { 55 } else { 88 }) {
        let (f, l) = (fold(first), fold(last));
        let local = match rng.below(5) {
            0 | 1 => format!("{f}.{l}"),
            2 => format!("{f}{l}"),
            3 => format!("{}{l}", &f[..1]),
            _ => format!("{f}.{l}{:02}", born.0 % 100),
        };
        let domain = rng.pick(EMAIL_DOMAINS);
        let mut email = format!("{local}@{domain}");
        if !used.emails.insert(email.clone()) {
            email = format!("{local}{n}@{domain}");
            used.emails.insert(email.clone());
        }
        put(&mut p, "emailAddress", email);
    }

    if rng.chance(80) {
        put(&mut p, "dob", format_date(born));
        if rng.chance(35) {
            put(&mut p, "age", age);
        }
    } else if rng.chance(50) {
        put(&mut p, "age", age);
    }
    if let Some(g) = gender {
        put(&mut p, "gender", g);
    }
    if rng.chance(70) {
        let (note, working_age) = *rng.pick(NOTES);
        if !working_age || age < 66 {
            put(&mut p, "notes", note);
        }
    }
    put(&mut p, "tracking", tracking(rng, referral));

    if rng.chance(45) {
        let count = if rng.chance(20) { 2 } else { 1 };
        let contacts: Vec<Value> = (0..count)
            .map(|_| {
                let names = if rng.chance(50) { FEMALE } else { MALE };
                let who = *rng.pick(names);
                let surname = if rng.chance(65) {
                    last
                } else {
                    *rng.pick(SURNAMES)
                };
                let six = used.mobile(rng);
                let mut c = Map::new();
                put(&mut c, "name", format!("{who} {surname}"));
                put(&mut c, "phone", mobile_style(rng, &six));
                if rng.chance(40) {
                    let email = format!("{}.{}@example.com", fold(who), fold(surname));
                    put(&mut c, "email", email);
                }
                Value::Object(c)
            })
            .collect();
        put(&mut p, "emergencyContacts", contacts);
    }
    if rng.chance(50) {
        let code = loop {
            let code = barcode(rng);
            if used.barcodes.insert(code.clone()) {
                break code;
            }
        };
        put(&mut p, "barcodeId", code);
    }
    if rng.chance(75) {
        let years = match status {
            "enquiry" | "created" => 2025..=2025,
            "lapsed" => 2016..=2021,
            _ => 2016..=2025,
        };
        let start = *years.start().max(&(born.0 + 18));
        let year = start + rng.below((years.end() - start + 1).max(1) as usize) as i64;
        put(&mut p, "joinDate", format_date(random_day(rng, year)));
    }
    let has_aid = matches!(status, "fitted" | "active" | "lapsed");
    if has_aid && rng.chance(70) {
        let (brand, models) = *rng.pick(BRANDS);
        let ears = *rng.pick(&["both", "both", "left", "right"]);
        let mut props = json!({
            "hearingAidBrand": brand,
            "hearingAidModel": rng.pick(models),
            "fittedEars": ears,
        });
        if rng.chance(50) {
            props["rechargeable"] = json!(rng.chance(70));
        }
        if rng.chance(40) {
            props["audiogramCount"] = json!(1 + rng.below(6));
        }
        put(&mut p, "customProperties", props);
    } else if rng.chance(20) {
        let contact = *rng.pick(&["email", "phone", "sms", "letter"]);
        put(
            &mut p,
            "customProperties",
            json!({ "preferredContact": contact }),
        );
    }
    if rng.chance(60) {
        put(&mut p, "medicalNumber", nhs_number(rng));
    }
    if rng.chance(20) {
        let mut m = Map::new();
        put(&mut m, "legacyId", format!("PMS-{}", 10_000 + 7 * n));
        if rng.chance(50) {
            put(
                &mut m,
                "importBatch",
                *rng.pick(&["2024-03", "2024-09", "2025-02"]),
            );
        }
        put(&mut p, "metadata", Value::Object(m));
    }

    // Exactly one of each pair: mostly by id, sometimes by name.
    if rng.chance(75) {
        put(&mut p, "referralId", format!("@ref:{referral}"));
    } else {
        let name = match rng.below(3) {
            0 => referral_name.to_lowercase(),
            1 => referral_name.to_uppercase(),
            _ => referral_name.to_string(),
        };
        put(&mut p, "referralName", name);
    }
    if rng.chance(80) {
        put(&mut p, "primaryClinicId", format!("@clinic:{}", clinic.key));
    } else {
        put(&mut p, "primaryClinicName", clinic.name);
    }
    if rng.chance(75) {
        put(&mut p, "statusId", format!("@status:{status}"));
    } else if rng.chance(50) {
        put(&mut p, "statusName", status_name.to_lowercase());
    } else {
        put(&mut p, "statusName", status_name);
    }
    Value::Object(p)
}

/// Objects to create, in order. `resource` is the API path segment. Any JSON
/// string value of the exact form "@<key>" (anywhere in `body`, including
/// inside arrays) refers to an earlier item's key and will be replaced by that
/// object's id by the loader.
pub fn plan() -> Vec<SeedItem> {
    let mut rng = Rng(SEED);
    let mut out = Vec::new();
    let mut add = |resource: &'static str, key: String, body: Value| {
        out.push(SeedItem {
            resource,
            key,
            body,
        })
    };
    for c in CLINICS {
        let mut address = Map::new();
        put(&mut address, "line1", c.line1);
        if let Some(line2) = c.line2 {
            put(&mut address, "line2", line2);
        }
        put(&mut address, "city", c.city);
        put(&mut address, "region", c.region);
        put(&mut address, "postcode", c.postcode);
        put(&mut address, "country", "GBR");
        let mut body = Map::new();
        put(&mut body, "name", c.name);
        put(&mut body, "address", Value::Object(address));
        put(&mut body, "timeZone", "Europe/London");
        put(&mut body, "phone", c.phone);
        put(
            &mut body,
            "email",
            format!("{}@stmungos.example.com", c.key),
        );
        if !c.metadata.is_empty() {
            let m: Map<String, Value> = c
                .metadata
                .iter()
                .map(|(k, v)| (k.to_string(), Value::from(*v)))
                .collect();
            put(&mut body, "metadata", Value::Object(m));
        }
        add("clinics", format!("clinic:{}", c.key), Value::Object(body));
    }
    for (i, (name, role, email, clinics)) in PRACTITIONERS.iter().enumerate() {
        let mut body = Map::new();
        put(&mut body, "fullName", *name);
        if let Some(email) = email {
            put(&mut body, "email", *email);
        }
        let ids: Vec<String> = clinics.iter().map(|c| format!("@clinic:{c}")).collect();
        put(&mut body, "clinicIds", ids);
        put(&mut body, "role", *role);
        let hours: Vec<Value> = working_days(i)
            .into_iter()
            .map(|(clinic, day, start, end)| {
                json!({
                    "clinicId": format!("@clinic:{clinic}"),
                    "day": WEEKDAYS[day as usize],
                    "start": format!("{start:02}:00"),
                    "end": format!("{end:02}:00"),
                })
            })
            .collect();
        put(&mut body, "workingHours", hours);
        add(
            "practitioners",
            format!("prac:{}", i + 1),
            Value::Object(body),
        );
    }
    for (key, name, _) in REFERRALS {
        add(
            "referral-sources",
            format!("ref:{key}"),
            json!({ "name": name }),
        );
    }
    for (i, (key, name, _)) in STATUSES.iter().enumerate() {
        let body = json!({ "name": name, "order": i + 1 });
        add("patient-statuses", format!("status:{key}"), body);
    }
    for (key, name, minutes, price) in APPOINTMENT_TYPES {
        add(
            "appointment-types",
            format!("type:{key}"),
            json!({"name": name, "durationMinutes": minutes, "price": price, "currency": "GBP",
                   "bookableOnline": *key != "tinnitus"}),
        );
    }
    let mut used = Used::default();
    for n in 1..=60 {
        let body = patient(&mut rng, n, &mut used);
        add("patients", format!("patient:{n}"), body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    const PAIRS: [(&str, &str); 3] = [
        ("referralId", "referralName"),
        ("primaryClinicId", "primaryClinicName"),
        ("statusId", "statusName"),
    ];

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) => {
                if let Some(key) = s.strip_prefix('@') {
                    out.push(key.to_string());
                }
            }
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            Value::Object(m) => m.values().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    /// `YYYY-MM-DD` naming a real calendar day.
    fn parse_date(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let num = |r: std::ops::Range<usize>| {
            let part = &s[r];
            part.bytes()
                .all(|c| c.is_ascii_digit())
                .then(|| part.parse::<u32>().ok())
                .flatten()
        };
        let (y, m, d) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
        ((1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m)).then_some((y, m, d))
    }

    fn str_of<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
        v.get(field).and_then(Value::as_str)
    }

    fn patients(plan: &[SeedItem]) -> impl Iterator<Item = &SeedItem> {
        plan.iter().filter(|i| i.resource == "patients")
    }

    fn names_of(plan: &[SeedItem], resource: &str) -> Vec<String> {
        plan.iter()
            .filter(|i| i.resource == resource)
            .map(|i| str_of(&i.body, "name").unwrap().to_string())
            .collect()
    }

    #[test]
    fn deterministic() {
        assert_eq!(plan(), plan());
    }

    #[test]
    fn counts_and_keys() {
        let p = plan();
        let count = |r: &str| p.iter().filter(|i| i.resource == r).count();
        assert_eq!(count("clinics"), 3);
        assert!((6..=8).contains(&count("practitioners")));
        assert_eq!(count("patients"), 60);
        let keys: Vec<&str> = patients(&p).map(|i| i.key.as_str()).collect();
        let want: Vec<String> = (1..=60).map(|n| format!("patient:{n}")).collect();
        assert_eq!(keys, want);
        for key in [
            "clinic:london",
            "clinic:manchester",
            "clinic:leeds",
            "prac:1",
        ] {
            assert!(p.iter().any(|i| i.key == key), "{key}");
        }
    }

    #[test]
    fn references_point_backwards() {
        let mut seen = HashSet::new();
        for item in plan() {
            let mut r = Vec::new();
            refs(&item.body, &mut r);
            for k in r {
                assert!(
                    seen.contains(&k),
                    "{} refers to {k} before it exists",
                    item.key
                );
            }
            assert!(seen.insert(item.key.clone()), "duplicate key {}", item.key);
        }
    }

    #[test]
    fn names_unique_case_insensitively() {
        let p = plan();
        for resource in ["referral-sources", "patient-statuses"] {
            let names = names_of(&p, resource);
            let folded: HashSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
            assert_eq!(folded.len(), names.len(), "{resource}: {names:?}");
        }
        let orders: Vec<i64> = p
            .iter()
            .filter(|i| i.resource == "patient-statuses")
            .map(|i| i.body["order"].as_i64().unwrap())
            .collect();
        assert_eq!(orders, (1..=orders.len() as i64).collect::<Vec<_>>());
    }

    #[test]
    fn exactly_one_of_each_pair_and_names_resolve() {
        let p = plan();
        let lower = |v: Vec<String>| -> HashSet<String> {
            v.into_iter().map(|n| n.to_lowercase()).collect()
        };
        let referrals = lower(names_of(&p, "referral-sources"));
        let statuses = lower(names_of(&p, "patient-statuses"));
        let clinics: HashSet<String> = names_of(&p, "clinics").into_iter().collect();
        let mut forms: HashMap<&str, usize> = HashMap::new();
        for item in patients(&p) {
            for (id, name) in PAIRS {
                let (has_id, has_name) = (item.body.get(id), item.body.get(name));
                assert!(
                    has_id.is_some() != has_name.is_some(),
                    "{} {id}/{name}",
                    item.key
                );
                *forms
                    .entry(if has_id.is_some() { id } else { name })
                    .or_default() += 1;
            }
            if let Some(n) = str_of(&item.body, "referralName") {
                assert!(referrals.contains(&n.to_lowercase()), "{n}");
            }
            if let Some(n) = str_of(&item.body, "statusName") {
                assert!(statuses.contains(&n.to_lowercase()), "{n}");
            }
            if let Some(n) = str_of(&item.body, "primaryClinicName") {
                assert!(clinics.contains(n), "{n}");
            }
        }
        // Both forms of every pair occur, the id form more often.
        for (id, name) in PAIRS {
            let (i, n) = (forms.get(id).copied(), forms.get(name).copied());
            assert!(
                i.unwrap_or(0) > n.unwrap_or(0) && n.unwrap_or(0) > 0,
                "{forms:?}"
            );
        }
        // Some names differ in letter case from the object's own.
        let exact: HashSet<String> = names_of(&p, "referral-sources").into_iter().collect();
        assert!(patients(&p)
            .any(|i| str_of(&i.body, "referralName").is_some_and(|n| !exact.contains(n))));
    }

    #[test]
    fn dates_and_ages() {
        let p = plan();
        for item in patients(&p) {
            let dob = str_of(&item.body, "dob").map(|d| parse_date(d).expect(d));
            let age = item.body.get("age").map(|a| a.as_i64().unwrap());
            if let Some(age) = age {
                assert!((18..=95).contains(&age), "{} age {age}", item.key);
            }
            if let Some(born) = dob {
                let years = age_on(born, AGE_ON);
                assert!((18..=95).contains(&years), "{} born {born:?}", item.key);
                if let Some(age) = age {
                    assert_eq!(age, years, "{}", item.key);
                }
            }
            if let Some(join) = str_of(&item.body, "joinDate") {
                let join = parse_date(join).expect(join);
                assert!(join < AGE_ON, "{}", item.key);
                if let Some(born) = dob {
                    assert!(age_on(born, join) >= 16, "{}", item.key);
                }
            }
        }
        assert!(parse_date("2024-02-29").is_some());
        for bad in [
            "2025-02-29",
            "2025-13-01",
            "2025-04-31",
            "2025-4-01",
            "25-04-01",
        ] {
            assert!(parse_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn contact_details_look_right() {
        let p = plan();
        let mut emails = HashSet::new();
        let mut phones = HashSet::new();
        for item in patients(&p) {
            let b = &item.body;
            assert!(b["tracking"].is_object(), "{}", item.key);
            let addr = &b["address"];
            assert_eq!(addr["country"], "GBR");
            let pc = addr["postcode"].as_str().unwrap();
            let (out, inward) = pc.split_once(' ').unwrap();
            assert!((2..=4).contains(&out.len()) && out.as_bytes()[0].is_ascii_uppercase());
            let inward = inward.as_bytes();
            assert!(inward.len() == 3 && inward[0].is_ascii_digit(), "{pc}");
            assert!(
                inward[1..].iter().all(|c| INWARD_LETTERS.contains(c)),
                "{pc}"
            );
            let mut numbers = vec![b["primaryPhoneNumber"].as_str().unwrap()];
            numbers.extend(str_of(b, "secondaryPhoneNumber"));
            let contacts = b.get("emergencyContacts").and_then(Value::as_array);
            for c in contacts.into_iter().flatten() {
                numbers.push(c["phone"].as_str().unwrap());
            }
            for number in numbers {
                assert!(
                    number
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ' ' || c == '+'),
                    "{number}"
                );
                let digits: String = number.chars().filter(char::is_ascii_digit).collect();
                let national = match number.strip_prefix('+') {
                    Some(r) => {
                        assert!(r.starts_with("44") && digits.len() == 12, "{number}");
                        format!("0{}", &digits[2..])
                    }
                    None => {
                        assert!(number.starts_with('0') && digits.len() == 11, "{number}");
                        digits
                    }
                };
                assert!(phones.insert(national), "{number} repeated");
            }
            if let Some(email) = str_of(b, "emailAddress") {
                let (local, domain) = email.split_once('@').unwrap();
                assert!(EMAIL_DOMAINS.contains(&domain), "{email}");
                assert!(!local.is_empty() && !local.starts_with('.') && !local.contains(".."));
                assert!(email
                    .bytes()
                    .all(|c| c.is_ascii() && !c.is_ascii_uppercase()));
                assert!(emails.insert(email.to_string()), "{email} repeated");
            }
            if let Some(nhs) = str_of(b, "medicalNumber") {
                let d: Vec<u32> = nhs.chars().filter_map(|c| c.to_digit(10)).collect();
                assert_eq!((nhs.len(), d.len()), (12, 10), "{nhs}");
                let sum: u32 = d[..9].iter().zip((2..=10).rev()).map(|(x, w)| x * w).sum();
                assert_eq!((11 - sum % 11) % 11, d[9], "{nhs}");
            }
        }
    }

    #[test]
    fn data_is_varied() {
        let p = plan();
        let all: Vec<&Value> = patients(&p).map(|i| &i.body).collect();
        let cities: HashSet<&str> = all
            .iter()
            .map(|b| b["address"]["city"].as_str().unwrap())
            .collect();
        assert!(cities.len() >= 6, "{cities:?}");
        let names: Vec<&str> = all.iter().map(|b| str_of(b, "fullName").unwrap()).collect();
        assert_eq!(names.iter().collect::<HashSet<_>>().len(), names.len());
        for first in ["Zoë", "José", "Siobhán"] {
            assert!(names.iter().any(|n| n.starts_with(first)), "{first}");
        }
        let mut surnames: HashMap<&str, usize> = HashMap::new();
        for n in &names {
            *surnames.entry(n.rsplit(' ').next().unwrap()).or_default() += 1;
        }
        assert!(surnames.values().filter(|c| **c > 1).count() >= 3);
        assert!(all
            .iter()
            .any(|b| b["tracking"].as_object().unwrap().is_empty()));
        assert!(all.iter().any(|b| b["tracking"].get("gclid").is_some()));
        for field in [
            "title",
            "dob",
            "age",
            "emailAddress",
            "notes",
            "emergencyContacts",
            "barcodeId",
            "joinDate",
            "customProperties",
            "medicalNumber",
            "metadata",
            "gender",
            "secondaryPhoneNumber",
        ] {
            let with = all.iter().filter(|b| b.get(field).is_some()).count();
            assert!(with > 0 && with < all.len(), "{field}: {with}");
        }
        let e164 = all
            .iter()
            .filter(|b| str_of(b, "primaryPhoneNumber").is_some_and(|n| n.starts_with('+')));
        assert!(e164.count() >= 5);
    }
}
