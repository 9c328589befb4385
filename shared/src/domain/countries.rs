pub const ALPHA3: &[&str] = &["DEU", "GBR", "USA"];
pub fn is_alpha3(code: &str) -> bool {
    ALPHA3.binary_search(&code).is_ok()
}
