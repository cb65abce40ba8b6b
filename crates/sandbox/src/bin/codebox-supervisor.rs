//! `codebox-supervisor LANGUAGE`: the trusted supervisor of every runner image (see
//! `codebox_sandbox::supervisor`).

fn main() {
    codebox_sandbox::supervisor::main()
}
