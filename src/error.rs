//! Library errors. User mistakes carry the file or field and what is allowed, so the CLI can
//! print one line and exit 2.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum Error {
    /// Bad user input: a file, field or value that is not allowed.
    #[error("{0}")]
    Input(String),
    /// A GPU problem (no adapter, missing limit, device lost).
    #[error("gpu: {0}")]
    Gpu(String),
    /// Training met a non-finite loss or weight and stopped.
    #[error("{0}")]
    Diverged(String),
    /// A chart could not be drawn (font, layout or backend failure).
    #[error("plot: {0}")]
    Plot(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }
    pub fn io(path: impl AsRef<std::path::Path>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.as_ref().display().to_string(),
            source,
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
