use serde_json::Value;
pub struct SeedItem {
    pub resource: &'static str,
    pub key: String,
    pub body: Value,
}
pub fn plan() -> Vec<SeedItem> {
    Vec::new()
}
