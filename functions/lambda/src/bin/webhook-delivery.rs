//! Lambda: SQS → signed webhook delivery (generated).
fn main() -> std::process::ExitCode {
    hub::lambda::main_delivery()
}
