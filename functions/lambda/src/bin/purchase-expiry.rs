//! Lambda: every minute, purchases past their expiresAt expire (generated).
fn main() -> std::process::ExitCode {
    hub::lambda::main_expiry()
}
