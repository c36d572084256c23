//! `chatnode-loadgen`: opens many WebSocket clients against one or more chatnode nodes, joins
//! them to rooms, sends at a fixed rate and measures connects, latency, loss, duplicates and
//! order. See docs/LOADGEN.md.

mod loadgen;

fn main() {
    std::process::exit(loadgen::main());
}
