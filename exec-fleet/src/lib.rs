pub mod sandbox;
pub mod worker;
