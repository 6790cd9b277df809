//! A router on disk: a folder holding `manifest.json` (the [`Manifest`](crate::Manifest), everything that is
//! not a weight) and `router.safetensors` (the weights), tied together by the manifest's digest of the weights.
//! Saving replaces the folder whole (`save`); loading checks the format version, the digest and every tensor's
//! size, and reads a folder replaced meanwhile again (`load`); the tensors' names and sizes, written and read,
//! are in `tensors`.

mod load;
mod save;
mod tensors;
#[cfg(test)]
mod tests;

/// SHA-256 of `bytes`, in lower-case hex: the manifest's `weights_sha256`.
fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}
