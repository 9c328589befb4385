//! The one binary every Lambda function of Practice Hub runs. Each function
//! names its route in `HUB_FUNCTION` (the template sets it): `patients-list`,
//! …, `stream-fanout`, `webhook-delivery`, `purchase-expiry`. An unknown or
//! missing name is one error log line and a failed init.
fn main() -> std::process::ExitCode {
    hub::lambda::main()
}
