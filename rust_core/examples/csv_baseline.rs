//! The practical limit for `make bench-core`: the `csv` crate parsing a file
//! with no other work. Prints `rows seconds` for the benchmark to read.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("usage: csv_baseline FILE")?;
    let started = Instant::now();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .from_path(&path)?;
    let mut record = csv::ByteRecord::new();
    let mut rows = 0u64;
    let mut fields = 0usize;
    while reader.read_byte_record(&mut record)? {
        rows += 1;
        fields += record.len();
    }
    let seconds = started.elapsed().as_secs_f64();
    // `fields` keeps the loop from being optimised away.
    println!("{rows} {seconds} {fields}");
    Ok(())
}
