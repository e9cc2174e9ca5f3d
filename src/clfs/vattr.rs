//! VATTR: the 104-byte attribute record (spec §3.5.1) and its time encoding.

use super::bytes::{ByteReader, ByteWriter};
use super::error::{DecodeError, DecodeResult, EncodeError};

/// Length prefix of the record.
pub const VATTR_RECORD_LEN: u32 = 104;

/// A time as VATTR stores it: unsigned 32-bit seconds and nanoseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClfsTime {
    /// Seconds since the epoch.
    pub sec: u32,
    /// Nanoseconds (0 … 999 999 999 for values the writer produces).
    pub nsec: u32,
}

impl ClfsTime {
    /// Converts an exact `stat` time the way the reference does: through
    /// the double `sec + nsec * 1e-9`, truncating seconds and nanoseconds
    /// (so `1600000000.123456789` becomes `(1600000000, 123456716)` and
    /// `x.999999999` may become `(x+1, 0)`). Times before 1970 or from
    /// 2106-02-07 on do not fit and are an error.
    pub fn from_stat(sec: i64, nsec: u32) -> Result<Self, EncodeError> {
        let t = sec as f64 + f64::from(nsec) * 1e-9;
        let s = t.trunc();
        // A negative double (even -1e-9, whose seconds truncate to 0) gives
        // a negative nanosecond field, which the reference cannot pack.
        if t < 0.0 || s >= 4_294_967_296.0 {
            return Err(EncodeError::TimeOutOfRange { sec, nsec });
        }
        let n = ((t - s) * 1e9).trunc();
        Ok(ClfsTime {
            sec: s as u32,
            nsec: n as u32,
        })
    }

    /// Exact conversion without the float quirk (for tests and readers).
    pub fn exact(sec: i64, nsec: u32) -> Result<Self, EncodeError> {
        let s = u32::try_from(sec).map_err(|_| EncodeError::TimeOutOfRange { sec, nsec })?;
        Ok(ClfsTime { sec: s, nsec })
    }
}

/// The attribute record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Vattr {
    /// `st_mode` including the file-type bits.
    pub mode: u16,
    /// Btype code of the inode (REG 1 … FIFO 7), raw.
    pub ftype: u8,
    /// Spare byte (0).
    pub spare: u8,
    /// Flags (0).
    pub flags: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size (meaning per type, spec §5).
    pub length: u64,
    /// Deletion time (0).
    pub dtime: ClfsTime,
    /// Modification time.
    pub mtime: ClfsTime,
    /// Inode change time.
    pub ctime: ClfsTime,
    /// Access time.
    pub atime: ClfsTime,
    /// Same as `length` in what loaders write.
    pub used: u64,
    /// Per-load random file system id.
    pub fsid: u64,
    /// Source inode number.
    pub fileid: u64,
    /// `major(st_rdev)`.
    pub rdev_major: u32,
    /// `minor(st_rdev)`.
    pub rdev_minor: u32,
    /// Link count.
    pub nlink: u32,
    /// HA version (0).
    pub ha_version: u32,
    /// The "union" field: the unmasked container id.
    pub containerid: u64,
}

impl Vattr {
    /// Encodes the handle payload: `u32 104` then the record.
    pub fn encode(&self, w: &mut ByteWriter) {
        w.u32(VATTR_RECORD_LEN);
        w.u16(self.mode);
        w.u8(self.ftype);
        w.u8(self.spare);
        w.u32(self.flags);
        w.u32(self.uid);
        w.u32(self.gid);
        w.u64(self.length);
        for t in [self.dtime, self.mtime, self.ctime, self.atime] {
            w.u32(t.sec);
            w.u32(t.nsec);
        }
        w.u64(self.used);
        w.u64(self.fsid);
        w.u64(self.fileid);
        w.u32(self.rdev_major);
        w.u32(self.rdev_minor);
        w.u32(self.nlink);
        w.u32(self.ha_version);
        w.u64(self.containerid);
    }

    /// Decodes the handle payload.
    pub fn decode(r: &mut ByteReader<'_>) -> DecodeResult<Self> {
        let at = r.offset();
        let len = r.u32("VATTR record length")?;
        if len != VATTR_RECORD_LEN {
            return Err(DecodeError::invalid(
                at,
                "VATTR record length",
                format!("{len}, expected 104"),
            ));
        }
        let mode = r.u16("VATTR mode")?;
        let ftype = r.u8("VATTR ftype")?;
        let spare = r.u8("VATTR spare")?;
        let flags = r.u32("VATTR flags")?;
        let uid = r.u32("VATTR uid")?;
        let gid = r.u32("VATTR gid")?;
        let length = r.u64("VATTR length")?;
        let mut times = [ClfsTime::default(); 4];
        for t in &mut times {
            t.sec = r.u32("VATTR time")?;
            t.nsec = r.u32("VATTR time")?;
        }
        Ok(Vattr {
            mode,
            ftype,
            spare,
            flags,
            uid,
            gid,
            length,
            dtime: times[0],
            mtime: times[1],
            ctime: times[2],
            atime: times[3],
            used: r.u64("VATTR used")?,
            fsid: r.u64("VATTR fsid")?,
            fileid: r.u64("VATTR fileid")?,
            rdev_major: r.u32("VATTR rdev major")?,
            rdev_minor: r.u32("VATTR rdev minor")?,
            nlink: r.u32("VATTR nlink")?,
            ha_version: r.u32("VATTR haVersion")?,
            containerid: r.u64("VATTR containerid")?,
        })
    }
}

/// glibc's `major()` of a `dev_t`.
pub fn dev_major(dev: u64) -> u32 {
    (((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff)) as u32
}

/// glibc's `minor()` of a `dev_t`.
pub fn dev_minor(dev: u64) -> u32 {
    ((dev & 0xff) | ((dev >> 12) & !0xff)) as u32
}

/// glibc's `makedev()`.
pub fn make_dev(major: u32, minor: u32) -> u64 {
    let (ma, mi) = (u64::from(major), u64::from(minor));
    ((ma & 0xffff_f000) << 32) | ((ma & 0xfff) << 8) | ((mi & 0xffff_ff00) << 12) | (mi & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_time_quirk_matches_the_spec() {
        let t = |s, n| ClfsTime::from_stat(s, n).unwrap();
        assert_eq!(
            t(1_600_000_000, 123_456_789),
            ClfsTime {
                sec: 1_600_000_000,
                nsec: 123_456_716
            }
        );
        assert_eq!(
            t(1_600_000_001, 500_000_000),
            ClfsTime {
                sec: 1_600_000_001,
                nsec: 500_000_000
            }
        );
        assert_eq!(
            t(1_600_000_002, 250_000_000),
            ClfsTime {
                sec: 1_600_000_002,
                nsec: 250_000_000
            }
        );
        // fixture README: x.999999999 rounds up; 4100000000.000000001 loses the ns.
        assert_eq!(
            t(1_700_000_000, 999_999_999),
            ClfsTime {
                sec: 1_700_000_001,
                nsec: 0
            }
        );
        assert_eq!(
            t(4_100_000_000, 1),
            ClfsTime {
                sec: 4_100_000_000,
                nsec: 0
            }
        );
        assert_eq!(t(0, 0), ClfsTime { sec: 0, nsec: 0 });
        assert_eq!(
            t(1_234_567_890, 123_456_789),
            ClfsTime {
                sec: 1_234_567_890,
                nsec: 123_456_716
            }
        );
    }

    #[test]
    fn times_outside_u32_seconds_are_errors() {
        assert!(ClfsTime::from_stat(-1, 0).is_err());
        assert!(ClfsTime::from_stat(-1, 999_999_999).is_err());
        assert!(ClfsTime::from_stat(4_294_967_296, 0).is_err());
        assert!(ClfsTime::from_stat(4_294_967_295, 0).is_ok());
    }

    #[test]
    fn dev_numbers_round_trip() {
        for (ma, mi) in [
            (0, 0),
            (8, 1),
            (259, 65_536),
            (4095, 255),
            (0x12345, 0xabcdef),
        ] {
            let d = make_dev(ma, mi);
            assert_eq!((dev_major(d), dev_minor(d)), (ma, mi));
        }
    }
}
