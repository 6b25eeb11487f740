//! One `Context` trait for every crate whose error enum has a
//! `Context { context, source: Box<Error> }` variant (vault-guard, vault-run):
//! `anyhow::Context`'s two methods over the crate's own typed error, written
//! once here instead of once per crate (issue 14, "written twice").

/// Declares `pub(crate) trait Context<T>` (`context`, `with_context`) for
/// the crate error `$error`, whose `Context` variant holds `context: String`
/// and `source: Box<$error>`. Any `Result<T, E: Into<$error>>` gains it.
#[macro_export]
macro_rules! error_context {
    ($error:ident) => {
        /// Says what was being done when an error happened, as `anyhow::Context` does.
        pub(crate) trait Context<T> {
            /// Wraps the error with `context`.
            fn context(self, context: impl Into<String>) -> ::std::result::Result<T, $error>;
            /// Wraps the error with the text `f` makes, only on error.
            fn with_context<S: Into<String>>(
                self,
                f: impl FnOnce() -> S,
            ) -> ::std::result::Result<T, $error>;
        }

        impl<T, E: Into<$error>> Context<T> for ::std::result::Result<T, E> {
            fn context(self, context: impl Into<String>) -> ::std::result::Result<T, $error> {
                self.map_err(|e| $error::Context {
                    context: context.into(),
                    source: Box::new(e.into()),
                })
            }

            fn with_context<S: Into<String>>(
                self,
                f: impl FnOnce() -> S,
            ) -> ::std::result::Result<T, $error> {
                self.map_err(|e| $error::Context {
                    context: f().into(),
                    source: Box::new(e.into()),
                })
            }
        }
    };
}

#[cfg(test)]
mod tests {
    #[derive(Debug)]
    pub(crate) enum Error {
        Io(std::io::Error),
        Context { context: String, source: Box<Error> },
    }

    impl From<std::io::Error> for Error {
        fn from(e: std::io::Error) -> Error {
            Error::Io(e)
        }
    }

    crate::error_context!(Error);

    // issue 14, "written twice": the one trait wraps, and builds its text only on error
    #[test]
    fn context_wraps_the_cause_and_with_context_runs_only_on_error() {
        let failed: Result<(), std::io::Error> = Err(std::io::Error::other("gone"));
        match failed.context("reading notes.json") {
            Err(Error::Context { context, source }) => {
                assert_eq!(context, "reading notes.json");
                assert!(matches!(*source, Error::Io(ref e) if e.to_string() == "gone"));
            }
            other => panic!("not wrapped: {other:?}"),
        }
        let ok: Result<u8, std::io::Error> = Ok(7);
        let value = ok
            .with_context(|| -> String { panic!("the text is made only on error") })
            .unwrap();
        assert_eq!(value, 7);
    }
}
