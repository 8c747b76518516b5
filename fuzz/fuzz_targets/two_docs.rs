/// Splits a fuzz input into two JSON documents separated by a NUL byte.
pub fn two_docs(data: &[u8]) -> Option<(serde_json::Value, serde_json::Value)> {
    let at = data.iter().position(|b| *b == 0)?;
    let a = serde_json::from_slice(&data[..at]).ok()?;
    let b = serde_json::from_slice(&data[at + 1..]).ok()?;
    Some((a, b))
}
