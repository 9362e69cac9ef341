//! Numeric defaults written in the field's own attribute,
//! e.g. `#[serde(default = "default::u64::<30>")]`.

/// `N`, as a `u64` setting's default.
pub(super) const fn u64<const N: u64>() -> u64 {
    N
}

/// `N`, as a `u32` setting's default.
pub(super) const fn u32<const N: u32>() -> u32 {
    N
}
