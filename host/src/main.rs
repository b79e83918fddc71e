fn main() {
    std::process::exit(rinseq::cli::main());
}
