use std::path::PathBuf;

use anyhow::Result;

use chord::native;

#[derive(clap::Args)]
pub struct Args {
    /// GGUF model (tensor data may be missing), or a packed component (`chord pack`).
    #[arg(long)]
    model: PathBuf,
    /// Also list every tensor.
    #[arg(long)]
    tensors: bool,
}

pub fn run(a: Args) -> Result<()> {
    if chord::runtime::is_packed_component(&a.model) {
        return super::pack::print_layout(&a.model, a.tensors);
    }
    let g = native::read_header(&a.model)?;
    println!("file:         {}", a.model.display());
    println!("gguf version: {}", g.version);
    println!("architecture: {}", g.architecture().unwrap_or("?"));
    if let Ok(name) = g.metadata.get_str("general.name") {
        println!("name:         {name}");
    }
    let params: u64 = g.tensors.iter().map(|t| t.n_elements()).sum();
    let bytes: u64 = g.tensors.iter().map(|t| t.size_bytes).sum();
    println!("parameters:   {params} ({:.1} M)", params as f64 / 1e6);
    println!(
        "tensor data:  {bytes} bytes ({:.1} MiB) in {} tensors",
        bytes as f64 / 1048576.0,
        g.tensors.len()
    );
    for (k, v) in g.metadata.iter() {
        if let Some(arr) = v.as_array() {
            println!("  {k} = [{} items]", arr.len());
        } else {
            println!("  {k} = {v:?}");
        }
    }
    if a.tensors {
        for t in &g.tensors {
            println!(
                "  {:<40} {:>6} {:?} @ {}",
                t.name,
                t.ty.name(),
                t.dims,
                t.offset
            );
        }
    }
    Ok(())
}
