fn main() {
    std::process::exit(runbook::main());
}
