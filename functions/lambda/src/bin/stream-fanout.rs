//! Lambda: DynamoDB stream → one SQS message per subscribed endpoint (generated).
fn main() -> std::process::ExitCode {
    hub::lambda::main_fanout()
}
