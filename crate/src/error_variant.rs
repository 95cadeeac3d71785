//! The stable name of a core error's variant: what the UI switches on across the wasm boundary.

/// An error whose variant has a stable name. Derive `strum::IntoStaticStr` on the enum to
/// get it: the name is the variant's own (or its `#[strum(serialize = "...")]` beside it),
/// so no table of names is kept apart from the variants.
pub trait ErrorVariant: std::error::Error {
    /// The variant's name, such as `WrongPassphrase` or `InvalidSettings`.
    fn variant(&self) -> &'static str;
}

impl<E> ErrorVariant for E
where
    E: std::error::Error,
    for<'a> &'a E: Into<&'static str>,
{
    fn variant(&self) -> &'static str {
        self.into()
    }
}
