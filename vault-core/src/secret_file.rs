//! Reading a secret from a file someone named (`--passphrase-file`): the
//! file is held to the vault's own files' standard, since the passphrase
//! opens every agent's secrets. The checks are made on the opened file, so
//! the file read is the file checked.

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use crate::error::{Error, Result};
use crate::{SecretBytes, SecretString};

/// Most bytes read from a passphrase file (only its first line is used).
pub const MAX_PASSPHRASE_FILE: u64 = 64 << 10;

/// The first line of the passphrase file at `path`. A pipe is fine
/// (`--passphrase-file <(pass show vault)`); the whole file read is zeroized.
///
/// # Errors
/// [`Error::UnfitFile`] for a directory, device or socket, an empty file or
/// one that is not UTF-8; [`Error::ForeignOwner`] for another user's file;
/// [`Error::LoosePermissions`] for one others can read; [`Error::Io`].
pub fn read_passphrase(path: &Path) -> Result<SecretString> {
    let io = |e| Error::io(path, e);
    let unfit = |reason: String| Error::UnfitFile { reason };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() && !meta.file_type().is_fifo() {
        let kind = ["a device or socket", "a directory"][usize::from(meta.is_dir())];
        return Err(unfit(format!(
            "the passphrase file {} is {kind}, not a file; give a file holding the passphrase",
            path.display()
        )));
    }
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me {
        return Err(Error::ForeignOwner {
            what: "passphrase file",
            path: path.to_owned(),
            uid: meta.uid(),
            me,
        });
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        let (path, want) = (path.to_owned(), 0o600);
        return Err(Error::LoosePermissions { path, mode, want });
    }
    let mut raw = Vec::new();
    (&mut file)
        .take(MAX_PASSPHRASE_FILE)
        .read_to_end(&mut raw)
        .map_err(io)?;
    let bytes = SecretBytes::new(raw);
    let text = bytes
        .as_str()
        .ok_or_else(|| unfit("the passphrase file is not UTF-8 text".into()))?;
    let line = text.lines().next().unwrap_or("");
    if line.is_empty() {
        let shown = path.display();
        return Err(unfit(format!("the passphrase file {shown} is empty")));
    }
    // `bytes` (the whole file) is zeroized when it drops at the end of this function
    Ok(SecretString::new(line.to_owned()))
}
