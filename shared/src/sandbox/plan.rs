//! The sandbox dataset: "St. Mungo's Clinic", a UK hearing and health
//! clinic group. Deterministic: a fixed-seed generator, the same data on
//! every run. Items refer to earlier ones with `"@key"` strings, which the
//! loader replaces with the ids it created.

use serde_json::{json, Map, Value};

pub struct SeedItem {
    pub resource: &'static str,
    pub key: String,
    pub body: Value,
}

/// splitmix64: small, fast, and the same on every platform.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

const CLINICS: &[(&str, &str, &str, &str, &str, &str)] = &[
    // key, name, line1, city, region, postcode
    (
        "london",
        "St. Mungo's Clinic – London",
        "12 Harley Street",
        "London",
        "Greater London",
        "W1G 9PF",
    ),
    (
        "manchester",
        "St. Mungo's Clinic – Manchester",
        "48 Deansgate",
        "Manchester",
        "Greater Manchester",
        "M3 2EG",
    ),
    (
        "leeds",
        "St. Mungo's Clinic – Leeds",
        "3 Park Square East",
        "Leeds",
        "West Yorkshire",
        "LS1 2NE",
    ),
];

const PRACTITIONERS: &[(&str, &str, &[&str])] = &[
    (
        "Dr Hippocrates Smethwyck",
        "ENT consultant",
        &["london", "manchester"],
    ),
    ("Augustus Pye", "audiologist", &["london"]),
    ("Miriam Strout", "audiologist", &["manchester"]),
    ("Dr Priya Raman", "audiologist", &["leeds", "manchester"]),
    ("Owen Pritchard", "hearing aid dispenser", &["leeds"]),
    (
        "Grace O'Connell",
        "hearing aid dispenser",
        &["london", "leeds"],
    ),
    ("Tomasz Nowak", "receptionist", &["manchester"]),
];

const REFERRALS: &[(&str, &str)] = &[
    ("google", "Google"),
    ("facebook", "Facebook"),
    ("gp", "GP referral"),
    ("wom", "Word of mouth"),
    ("walkin", "Walk-in"),
    ("newspaper", "Newspaper"),
];

const STATUSES: &[(&str, &str)] = &[
    ("enquiry", "New enquiry"),
    ("created", "Patient Created"),
    ("booked", "Appointment booked"),
    ("active", "Active"),
    ("fitted", "Hearing aid fitted"),
    ("lapsed", "Lapsed"),
];

const FEMALE: &[&str] = &[
    "Olivia", "Amelia", "Isla", "Ava", "Mia", "Grace", "Sophie", "Emily", "Margaret", "Patricia",
    "Siobhán", "Zoë", "Aisha", "Priya", "Hannah", "Eleanor", "Joan", "Maureen", "Fatima", "Chloé",
];
const MALE: &[&str] = &[
    "Oliver", "George", "Harry", "Jack", "Noah", "Arthur", "William", "James", "Thomas", "David",
    "José", "Mohammed", "Raj", "Seán", "Peter", "Kenneth", "Brian", "Colin", "Dylan", "Rhys",
];
const SURNAMES: &[&str] = &[
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Wright", "Evans", "Thomas", "Roberts", "Khan", "Walker", "O'Brien", "Murphy", "Hughes",
    "Edwards", "Green", "Hall", "Wood", "Clarke", "Jackson", "Singh", "Ahmed", "Kowalski",
    "Nguyen", "Smith", "Taylor",
];
const CITIES: &[(&str, &str, &str)] = &[
    // city, region, postcode area
    ("London", "Greater London", "SW"),
    ("London", "Greater London", "N"),
    ("Manchester", "Greater Manchester", "M"),
    ("Leeds", "West Yorkshire", "LS"),
    ("Bristol", "Bristol", "BS"),
    ("York", "North Yorkshire", "YO"),
    ("Salford", "Greater Manchester", "M"),
    ("Bradford", "West Yorkshire", "BD"),
    ("Sheffield", "South Yorkshire", "S"),
    ("Brighton", "East Sussex", "BN"),
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
];
const NOTES: &[&str] = &[
    "Reports difficulty following conversations in noisy restaurants.",
    "Tinnitus in the left ear since a concert in 2019; worse at night.",
    "Existing hearing aid user, wants a second opinion on rechargeable models.",
    "Referred after a failed workplace hearing screening.",
    "Prefers morning appointments; hard of hearing on the telephone, please email.",
    "Family history of age-related hearing loss.",
    "Wax build-up noted at last visit; microsuction recommended.",
    "Interested in discreet in-the-canal hearing aids.",
    "Sudden hearing loss in the right ear two weeks ago, urgent review.",
    "Musician, wants custom hearing protection.",
];
const CAMPAIGNS: &[(&str, &str, &str)] = &[
    ("google", "cpc", "winter-hearing-check"),
    ("facebook", "paid-social", "free-hearing-test"),
    ("newsletter", "email", "spring-offer"),
    ("bing", "cpc", "tinnitus-clinic"),
];
const BRANDS: &[&str] = &["Phonak", "Oticon", "Signia", "Widex", "ReSound", "Starkey"];
const GENDERS: &[&str] = &["female", "male", "non-binary", "unknown"];

fn plain(name: &str) -> String {
    // Email-safe ASCII for a name: drop apostrophes, fold the accents used here.
    name.chars()
        .filter_map(|c| match c {
            'é' => Some('e'),
            'ë' => Some('e'),
            'á' => Some('a'),
            '\'' | ' ' => None,
            c => Some(c.to_ascii_lowercase()),
        })
        .collect()
}

fn date(y: i64, m: u32, d: u32) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

fn patient(rng: &mut Rng, n: usize) -> Value {
    let female = rng.chance(52);
    let first = *rng.pick(if female { FEMALE } else { MALE });
    let last = *rng.pick(SURNAMES);
    let full = format!("{first} {last}");
    let (city, region, area) = *rng.pick(CITIES);
    let mut p = Map::new();
    if rng.chance(70) {
        let titles: &[&str] = if female {
            &["Mrs", "Ms", "Miss", "Dr"]
        } else {
            &["Mr", "Mr", "Dr"]
        };
        p.insert("title".into(), json!(rng.pick(titles)));
    }
    p.insert("fullName".into(), json!(full));
    let mut address = json!({
        "line1": format!("{} {}", 1 + rng.below(180), rng.pick(STREETS)),
        "city": city,
        "postcode": format!("{area}{} {}{}{}", 1 + rng.below(20), rng.below(10), char::from(b'A' + rng.below(26) as u8), char::from(b'A' + rng.below(26) as u8)),
        "country": "GBR",
    });
    if rng.chance(30) {
        address["line2"] = json!(format!("Flat {}", 1 + rng.below(30)));
    }
    if rng.chance(80) {
        address["region"] = json!(region);
    }
    p.insert("address".into(), address);
    let mobile = format!("7700 9{}", rng.digits(5));
    p.insert(
        "primaryPhoneNumber".into(),
        json!(if rng.chance(50) {
            format!("0{mobile}")
        } else {
            format!("+44{}", mobile.replace(' ', ""))
        }),
    );
    if rng.chance(25) {
        p.insert(
            "secondaryPhoneNumber".into(),
            json!(format!("0113 496 {}", rng.digits(4))),
        );
    }
    if rng.chance(85) {
        let domain = rng.pick(&["example.com", "example.org", "example.net"]);
        p.insert(
            "emailAddress".into(),
            json!(format!("{}.{}{}@{domain}", plain(first), plain(last), n)),
        );
    }
    // Ages 18–95 in 2026, real calendar dates.
    let age = 18 + rng.below(78) as i64;
    let (month, day) = (1 + rng.below(12) as u32, 1 + rng.below(28) as u32);
    if rng.chance(80) {
        p.insert("dob".into(), json!(date(2026 - age - 1, month, day)));
        if rng.chance(60) {
            // Born before 25 November 2025's birthday boundary: age as of 2026-11-25.
            let had_birthday = (month, day) <= (11, 25);
            p.insert(
                "age".into(),
                json!(if had_birthday { age + 1 } else { age }),
            );
        }
    } else if rng.chance(50) {
        p.insert("age".into(), json!(age));
    }
    if rng.chance(90) {
        let g = if rng.chance(92) {
            if female {
                "female"
            } else {
                "male"
            }
        } else {
            rng.pick(&GENDERS[2..])
        };
        p.insert("gender".into(), json!(g));
    }
    if rng.chance(75) {
        p.insert("notes".into(), json!(rng.pick(NOTES)));
    }
    let tracking = if rng.chance(25) {
        json!({})
    } else {
        let (source, medium, campaign) = *rng.pick(CAMPAIGNS);
        let mut t = json!({"source": source, "medium": medium, "campaign": campaign});
        if rng.chance(50) {
            t["landingPage"] = json!("/book-a-hearing-test");
        }
        if source == "google" && rng.chance(60) {
            t["gclid"] = json!(format!("Cj0KCQ{}", rng.digits(10)));
        }
        if source == "facebook" && rng.chance(60) {
            t["fbclid"] = json!(format!("IwAR{}", rng.digits(12)));
        }
        t
    };
    p.insert("tracking".into(), tracking);
    if rng.chance(40) {
        let who = *rng.pick(FEMALE);
        p.insert(
            "emergencyContacts".into(),
            json!([{"name": format!("{who} {last}"), "phone": format!("07700 9{}", rng.digits(5)), "email": format!("{}@example.com", plain(who))}]),
        );
    }
    if rng.chance(50) {
        p.insert("barcodeId".into(), json!(format!("SMC{}", rng.digits(8))));
    }
    if rng.chance(70) {
        p.insert(
            "joinDate".into(),
            json!(date(
                2019 + rng.below(7) as i64,
                1 + rng.below(12) as u32,
                1 + rng.below(28) as u32
            )),
        );
    }
    if rng.chance(40) {
        p.insert("customProperties".into(), json!({"hearingAidBrand": rng.pick(BRANDS), "preferredContact": rng.pick(&["email", "phone", "sms"])}));
    }
    if rng.chance(60) {
        p.insert(
            "medicalNumber".into(),
            json!(format!(
                "{} {} {}",
                rng.digits(3),
                rng.digits(3),
                rng.digits(4)
            )),
        );
    }
    if rng.chance(20) {
        p.insert(
            "metadata".into(),
            json!({"legacyId": format!("PMS-{}", 10_000 + n)}),
        );
    }
    // Exactly one of each pair, mostly by id, sometimes by name.
    let (rkey, rname) = *rng.pick(REFERRALS);
    if rng.chance(75) {
        p.insert("referralId".into(), json!(format!("@ref:{rkey}")));
    } else {
        let name = if rng.chance(50) {
            rname.to_lowercase()
        } else {
            rname.to_string()
        };
        p.insert("referralName".into(), json!(name));
    }
    let (ckey, cname, ..) = *rng.pick(CLINICS);
    if rng.chance(75) {
        p.insert("primaryClinicId".into(), json!(format!("@clinic:{ckey}")));
    } else {
        p.insert("primaryClinicName".into(), json!(cname));
    }
    let (skey, sname) = *rng.pick(STATUSES);
    if rng.chance(75) {
        p.insert("statusId".into(), json!(format!("@status:{skey}")));
    } else {
        p.insert("statusName".into(), json!(sname.to_uppercase()));
    }
    Value::Object(p)
}

pub fn plan() -> Vec<SeedItem> {
    let mut rng = Rng(0x05EE_D0F5_A147_u64);
    let mut out = Vec::new();
    let mut item = |resource, key: String, body| {
        out.push(SeedItem {
            resource,
            key,
            body,
        })
    };
    for (key, name, line1, city, region, postcode) in CLINICS {
        item(
            "clinics",
            format!("clinic:{key}"),
            json!({
                "name": name,
                "address": {"line1": line1, "city": city, "region": region, "postcode": postcode, "country": "GBR"},
                "timeZone": "Europe/London",
                "phone": format!("+44 20 7946 0{}", rng.digits(3)),
                "email": format!("{key}@stmungos.example.com"),
                "metadata": {"site": key.to_string()},
            }),
        );
    }
    for (i, (name, role, clinics)) in PRACTITIONERS.iter().enumerate() {
        let ids: Vec<String> = clinics.iter().map(|c| format!("@clinic:{c}")).collect();
        item(
            "practitioners",
            format!("prac:{}", i + 1),
            json!({"fullName": name, "role": role, "clinicIds": ids, "email": format!("{}@stmungos.example.com", plain(name.trim_start_matches("Dr ")))}),
        );
    }
    for (key, name) in REFERRALS {
        item(
            "referral-sources",
            format!("ref:{key}"),
            json!({"name": name}),
        );
    }
    for (i, (key, name)) in STATUSES.iter().enumerate() {
        item(
            "patient-statuses",
            format!("status:{key}"),
            json!({"name": name, "order": i + 1}),
        );
    }
    for n in 1..=60 {
        let body = patient(&mut rng, n);
        item("patients", format!("patient:{n}"), body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::String(s) if s.starts_with('@') => out.push(s[1..].to_string()),
            Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
            Value::Object(m) => m.values().for_each(|x| refs(x, out)),
            _ => {}
        }
    }

    #[test]
    fn deterministic_and_consistent() {
        let a = plan();
        let b = plan();
        assert_eq!(a.len(), b.len());
        assert!(a
            .iter()
            .zip(&b)
            .all(|(x, y)| x.key == y.key && x.body == y.body));
        let mut seen = HashSet::new();
        for item in &a {
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
            if item.resource == "patients" {
                for (id, name) in [
                    ("referralId", "referralName"),
                    ("primaryClinicId", "primaryClinicName"),
                    ("statusId", "statusName"),
                ] {
                    assert!(
                        item.body.get(id).is_some() != item.body.get(name).is_some(),
                        "{} {id}/{name}",
                        item.key
                    );
                }
                if let Some(d) = item.body.get("dob").and_then(Value::as_str) {
                    assert!(crate::time::parse_date(d).is_some(), "{d}");
                }
            }
        }
        let patients = a.iter().filter(|i| i.resource == "patients").count();
        assert_eq!(patients, 60);
        let names: HashSet<String> = REFERRALS.iter().map(|(_, n)| n.to_lowercase()).collect();
        assert_eq!(names.len(), REFERRALS.len());
    }
}
