//! `elb-balancer`: see the library's documentation (`lib.rs`) for the command and its contract.

fn main() -> std::process::ExitCode {
    balancer::main()
}
