//! Xen's errno values at the guest ABI (Linux numbering), returned negated in `rax`.
//! Every value is `XEN_ERRNO(name, value)` in xen-public/errno.h.

use core::fmt;

/// An error a hypercall returns to the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i64)]
pub enum Errno {
    EPERM = 1,       // xen-public/errno.h
    ENOENT = 2,      // xen-public/errno.h
    ESRCH = 3,       // xen-public/errno.h
    ENXIO = 6,       // xen-public/errno.h
    E2BIG = 7,       // xen-public/errno.h
    EAGAIN = 11,     // xen-public/errno.h
    ENOMEM = 12,     // xen-public/errno.h
    EACCES = 13,     // xen-public/errno.h
    EFAULT = 14,     // xen-public/errno.h
    EBUSY = 16,      // xen-public/errno.h
    EEXIST = 17,     // xen-public/errno.h
    ENODEV = 19,     // xen-public/errno.h
    EINVAL = 22,     // xen-public/errno.h
    ENOSPC = 28,     // xen-public/errno.h
    EDOM = 33,       // xen-public/errno.h
    ERANGE = 34,     // xen-public/errno.h
    ENOSYS = 38,     // xen-public/errno.h
    EILSEQ = 84,     // xen-public/errno.h
    EOPNOTSUPP = 95, // xen-public/errno.h
    ENOBUFS = 105,   // xen-public/errno.h
}

impl Errno {
    /// The value the guest sees in `rax`.
    pub fn to_ret(self) -> i64 {
        -(self as i64)
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::EPERM => "EPERM",
            Self::ENOENT => "ENOENT",
            Self::ESRCH => "ESRCH",
            Self::ENXIO => "ENXIO",
            Self::E2BIG => "E2BIG",
            Self::EAGAIN => "EAGAIN",
            Self::ENOMEM => "ENOMEM",
            Self::EACCES => "EACCES",
            Self::EFAULT => "EFAULT",
            Self::EBUSY => "EBUSY",
            Self::EEXIST => "EEXIST",
            Self::ENODEV => "ENODEV",
            Self::EINVAL => "EINVAL",
            Self::ENOSPC => "ENOSPC",
            Self::EDOM => "EDOM",
            Self::ERANGE => "ERANGE",
            Self::ENOSYS => "ENOSYS",
            Self::EILSEQ => "EILSEQ",
            Self::EOPNOTSUPP => "EOPNOTSUPP",
            Self::ENOBUFS => "ENOBUFS",
        }
    }
    pub fn from_ret(v: i64) -> Option<Self> {
        Some(match -v {
            1 => Self::EPERM,
            2 => Self::ENOENT,
            3 => Self::ESRCH,
            6 => Self::ENXIO,
            7 => Self::E2BIG,
            11 => Self::EAGAIN,
            12 => Self::ENOMEM,
            13 => Self::EACCES,
            14 => Self::EFAULT,
            16 => Self::EBUSY,
            17 => Self::EEXIST,
            19 => Self::ENODEV,
            22 => Self::EINVAL,
            28 => Self::ENOSPC,
            33 => Self::EDOM,
            34 => Self::ERANGE,
            38 => Self::ENOSYS,
            84 => Self::EILSEQ,
            95 => Self::EOPNOTSUPP,
            105 => Self::ENOBUFS,
            _ => return None,
        })
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "-{}", self.name())
    }
}
