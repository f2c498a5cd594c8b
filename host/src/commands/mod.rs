pub mod component;
pub mod convert;
pub mod embed;
pub mod eval;
pub mod generate;
pub mod info;
pub mod quantize;
pub mod tokenize;
