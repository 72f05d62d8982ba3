//! Raw video frames: planar YUV 4:2:0 (I420) with per-plane strides and a timestamp in the
//! caller's own time base. Construction validates every size, so encoders can trust a frame.

use bytes::Bytes;
use thiserror::Error;

use crate::time::{rescale, Rational, TIME_BASE_90K};

/// Largest width or height accepted anywhere in this crate. It matches openh264's limit
/// (level 5.2) and keeps every size computation far from overflow.
pub const MAX_DIMENSION: u32 = 8192;

/// Why a frame (or a frame-shaped buffer) was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    /// Width or height is zero.
    #[error("frame size {width}x{height} is empty; both dimensions must be at least 1")]
    ZeroSize {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// Width or height above [`MAX_DIMENSION`].
    #[error("frame size {width}x{height} is too large; the maximum is {MAX_DIMENSION} per side")]
    TooLarge {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// Odd width or height where 4:2:0 encoding needs even sizes.
    #[error("frame size {width}x{height} has an odd side; 4:2:0 encoders need even sizes (crop or pad by one pixel)")]
    OddDimensions {
        /// Width given.
        width: u32,
        /// Height given.
        height: u32,
    },
    /// A plane stride shorter than one row of that plane.
    #[error("plane {plane} stride {stride} is shorter than its row of {min} bytes")]
    StrideTooSmall {
        /// 0 = Y, 1 = U, 2 = V (or 0 for an RGB buffer).
        plane: usize,
        /// Stride given.
        stride: usize,
        /// Bytes in one row of that plane.
        min: usize,
    },
    /// A plane holding fewer than `stride * rows` bytes.
    #[error("plane {plane} holds {len} bytes but needs {need} (stride x rows)")]
    PlaneTooSmall {
        /// 0 = Y, 1 = U, 2 = V (or 0 for an RGB buffer).
        plane: usize,
        /// Bytes given.
        len: usize,
        /// Bytes needed.
        need: usize,
    },
    /// A frame rate with a zero numerator or denominator.
    #[error("frame rate {num}/{den} is invalid; both parts must be non-zero")]
    InvalidFrameRate {
        /// Numerator given.
        num: u32,
        /// Denominator given.
        den: u32,
    },
    /// A time base with a zero numerator or denominator.
    #[error("time base {num}/{den} is invalid; both parts must be non-zero")]
    InvalidTimeBase {
        /// Numerator given.
        num: u32,
        /// Denominator given.
        den: u32,
    },
}

/// Checks a width/height pair: non-zero and not above [`MAX_DIMENSION`].
pub(crate) fn check_size(width: u32, height: u32) -> Result<(), FrameError> {
    if width == 0 || height == 0 {
        return Err(FrameError::ZeroSize { width, height });
    }
    if width > MAX_DIMENSION || height > MAX_DIMENSION {
        return Err(FrameError::TooLarge { width, height });
    }
    Ok(())
}

/// Checks that both sides are even (what every 4:2:0 encoder here needs).
pub(crate) fn check_even(width: u32, height: u32) -> Result<(), FrameError> {
    if !width.is_multiple_of(2) || !height.is_multiple_of(2) {
        return Err(FrameError::OddDimensions { width, height });
    }
    Ok(())
}

/// Width and height of the chroma planes of an I420 image (rounded up for odd sizes).
pub const fn chroma_size(width: u32, height: u32) -> (u32, u32) {
    (width.div_ceil(2), height.div_ceil(2))
}

/// One uncompressed picture in planar YUV 4:2:0 (I420), BT.601 limited range by convention.
///
/// Planes are [`Bytes`], so cloning a frame (or handing it to two encoders) copies no pixels.
/// Each plane must hold at least `stride * rows` bytes; rows are `height` for Y and
/// `ceil(height / 2)` for U and V.
#[derive(Clone, Debug)]
pub struct VideoFrame {
    width: u32,
    height: u32,
    pts: i64,
    time_base: Rational,
    planes: [Bytes; 3],
    strides: [usize; 3],
}

impl VideoFrame {
    /// Builds a frame from three planes and their strides, validating every size.
    ///
    /// `pts` counts ticks of `time_base` (seconds per tick, e.g. `1/30` for a frame index at
    /// 30 fps, or [`TIME_BASE_90K`]).
    pub fn new(
        width: u32,
        height: u32,
        pts: i64,
        time_base: Rational,
        planes: [Bytes; 3],
        strides: [usize; 3],
    ) -> Result<Self, FrameError> {
        check_size(width, height)?;
        if !time_base.is_positive() {
            return Err(FrameError::InvalidTimeBase { num: time_base.num, den: time_base.den });
        }
        let (cw, ch) = chroma_size(width, height);
        let dims = [(width, height), (cw, ch), (cw, ch)];
        for (plane, ((w, h), (data, &stride))) in
            dims.iter().zip(planes.iter().zip(strides.iter())).enumerate()
        {
            let min = *w as usize;
            if stride < min {
                return Err(FrameError::StrideTooSmall { plane, stride, min });
            }
            let need = stride * *h as usize;
            if data.len() < need {
                return Err(FrameError::PlaneTooSmall { plane, len: data.len(), need });
            }
        }
        Ok(Self { width, height, pts, time_base, planes, strides })
    }

    /// Builds a frame from one packed I420 buffer (Y then U then V, no row padding), as
    /// written by `ffmpeg -pix_fmt yuv420p -f rawvideo`.
    pub fn from_i420(
        width: u32,
        height: u32,
        pts: i64,
        time_base: Rational,
        data: impl Into<Bytes>,
    ) -> Result<Self, FrameError> {
        check_size(width, height)?;
        let data: Bytes = data.into();
        let (cw, ch) = chroma_size(width, height);
        let y_len = width as usize * height as usize;
        let c_len = cw as usize * ch as usize;
        let need = y_len + 2 * c_len;
        if data.len() < need {
            return Err(FrameError::PlaneTooSmall { plane: 0, len: data.len(), need });
        }
        let planes =
            [data.slice(0..y_len), data.slice(y_len..y_len + c_len), data.slice(y_len + c_len..need)];
        Self::new(width, height, pts, time_base, planes, [width as usize, cw as usize, cw as usize])
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Presentation timestamp in ticks of [`Self::time_base`].
    pub fn pts(&self) -> i64 {
        self.pts
    }

    /// Seconds per tick of [`Self::pts`].
    pub fn time_base(&self) -> Rational {
        self.time_base
    }

    /// The presentation timestamp on the 90 kHz clock (rounded to nearest).
    pub fn pts_90k(&self) -> i64 {
        rescale(self.pts, self.time_base, TIME_BASE_90K)
    }

    /// Replaces the timestamp (e.g. to restamp frames from a wall clock).
    pub fn set_pts(&mut self, pts: i64, time_base: Rational) -> Result<(), FrameError> {
        if !time_base.is_positive() {
            return Err(FrameError::InvalidTimeBase { num: time_base.num, den: time_base.den });
        }
        self.pts = pts;
        self.time_base = time_base;
        Ok(())
    }

    /// Plane `i` (0 = Y, 1 = U, 2 = V). Panics on `i > 2` like slice indexing.
    pub fn plane(&self, i: usize) -> &[u8] {
        &self.planes[i]
    }

    /// Stride of plane `i` in bytes.
    pub fn stride(&self, i: usize) -> usize {
        self.strides[i]
    }

    /// The luma plane.
    pub fn y(&self) -> &[u8] {
        &self.planes[0]
    }

    /// The Cb plane.
    pub fn u(&self) -> &[u8] {
        &self.planes[1]
    }

    /// The Cr plane.
    pub fn v(&self) -> &[u8] {
        &self.planes[2]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tb() -> Rational {
        Rational::new(1, 30)
    }

    #[test]
    fn packed_i420_is_split_into_planes() {
        let mut data = vec![1u8; 4 * 2];
        data.extend([2u8; 2]);
        data.extend([3u8; 2]);
        let f = VideoFrame::from_i420(4, 2, 7, tb(), data).unwrap();
        assert_eq!(f.y(), &[1; 8]);
        assert_eq!(f.u(), &[2; 2]);
        assert_eq!(f.v(), &[3; 2]);
        assert_eq!(f.stride(1), 2);
        assert_eq!(f.pts_90k(), 7 * 3000);
    }

    #[test]
    fn bad_sizes_are_typed_errors() {
        assert_eq!(
            VideoFrame::from_i420(0, 2, 0, tb(), vec![]).unwrap_err(),
            FrameError::ZeroSize { width: 0, height: 2 }
        );
        assert!(matches!(
            VideoFrame::from_i420(4, 2, 0, tb(), vec![0; 11]),
            Err(FrameError::PlaneTooSmall { need: 12, .. })
        ));
        assert!(matches!(VideoFrame::from_i420(9000, 2, 0, tb(), vec![]), Err(FrameError::TooLarge { .. })));
        let planes = [Bytes::from(vec![0; 8]), Bytes::from(vec![0; 2]), Bytes::from(vec![0; 2])];
        assert!(matches!(
            VideoFrame::new(4, 2, 0, tb(), planes.clone(), [3, 2, 2]),
            Err(FrameError::StrideTooSmall { plane: 0, .. })
        ));
        assert!(matches!(
            VideoFrame::new(4, 2, 0, tb(), planes.clone(), [4, 2, 4]),
            Err(FrameError::PlaneTooSmall { plane: 2, .. })
        ));
        assert!(matches!(
            VideoFrame::new(4, 2, 0, Rational::new(1, 0), planes, [4, 2, 2]),
            Err(FrameError::InvalidTimeBase { .. })
        ));
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        // 3x3 -> chroma 2x2; allowed as a frame, rejected later by the encoders.
        let f = VideoFrame::from_i420(3, 3, 0, tb(), vec![0; 9 + 8]).unwrap();
        assert_eq!(f.u().len(), 4);
        assert_eq!(check_even(3, 3), Err(FrameError::OddDimensions { width: 3, height: 3 }));
    }
}
