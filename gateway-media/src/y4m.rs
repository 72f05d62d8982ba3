//! YUV4MPEG2 (Y4M) input: the uncompressed stream `ffmpeg -f yuv4mpegpipe` writes, so any file
//! or camera ffmpeg reads can feed a job through a pipe.
//!
//! A stream is one header line (`YUV4MPEG2 W640 H360 F30:1 Ip A1:1 C420jpeg`), then per frame a
//! `FRAME` line (parameters ignored) and the planes Y, U, V. Only 8-bit 4:2:0 is taken (`C420`,
//! `C420jpeg`, `C420paldv`, `C420mpeg2`, or no `C`); anything else is refused with the
//! conversion that fixes it. Interlacing and aspect are ignored. Frame `n` gets pts `n` in a
//! time base of one frame period.

use std::io::{BufRead, BufReader, Read};

use bytes::BytesMut;

use crate::frame::{check_even, check_size, FrameError, VideoFrame};
use crate::time::Rational;

/// The stream's magic, first on the header line.
pub const Y4M_MAGIC: &[u8] = b"YUV4MPEG2";
/// Longest header or `FRAME` line taken (real ones are well under 100 bytes).
const MAX_LINE: usize = 1024;

/// Why a Y4M stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Y4mError {
    /// The input does not start with `YUV4MPEG2`.
    #[error(
        "not a Y4M stream (it must start with YUV4MPEG2; make one with `ffmpeg -i IN -f yuv4mpegpipe -`)"
    )]
    NotY4m,
    /// The input is an MPEG transport stream (it starts with the TS sync byte), not Y4M.
    #[error("the input is MPEG-TS, not Y4M (decode it to Y4M with `ffmpeg -i IN -f yuv4mpegpipe -`)")]
    MpegTs,
    /// The input ended inside the header, or the header line is absurdly long.
    #[error("the Y4M header is truncated or longer than {MAX_LINE} bytes")]
    TruncatedHeader,
    /// A required header field is missing.
    #[error("the Y4M header has no {0} field")]
    MissingField(&'static str),
    /// A header field does not parse.
    #[error("the Y4M header field {field} is invalid: {value:?}")]
    BadField {
        /// The field's letter.
        field: char,
        /// Its text.
        value: String,
    },
    /// A colour space other than 8-bit 4:2:0.
    #[error("Y4M colour space {0} is not supported; convert to 8-bit 4:2:0 with `-pix_fmt yuv420p`")]
    UnsupportedColorspace(String),
    /// Odd width or height, which 4:2:0 encoders cannot take.
    #[error("Y4M frame size {width}x{height} has an odd side; crop or scale to even sizes (`-vf scale=trunc(iw/2)*2:trunc(ih/2)*2`)")]
    OddSize {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// The frame size is not one a frame can have.
    #[error("Y4M frame size: {0}")]
    Size(FrameError),
    /// A frame does not start with `FRAME`.
    #[error("Y4M frame {index}: expected a FRAME line")]
    BadFrameHeader {
        /// Frame index.
        index: u64,
    },
    /// The input ended inside a frame.
    #[error("Y4M frame {index} is truncated: {got} of {need} bytes")]
    TruncatedFrame {
        /// Frame index.
        index: u64,
        /// Bytes read.
        got: usize,
        /// Bytes a frame has.
        need: usize,
    },
    /// Reading the input failed.
    #[error("reading the Y4M input: {0}")]
    Io(String),
}

/// What a Y4M header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Y4mHeader {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frames per second.
    pub frame_rate: Rational,
}

impl Y4mHeader {
    /// Bytes of one frame's planes.
    pub fn frame_len(&self) -> usize {
        let (w, h) = (self.width as usize, self.height as usize);
        w * h + 2 * w.div_ceil(2) * h.div_ceil(2)
    }
}

/// Why input starting with `start` is not Y4M: MPEG-TS, told apart by its sync bytes, or
/// anything else.
fn not_y4m(start: &[u8]) -> Y4mError {
    const SYNC: u8 = 0x47;
    const PACKET: usize = 188;
    let sync_at = |i: usize| start.get(i) == Some(&SYNC);
    if sync_at(0) && (start.len() <= PACKET || sync_at(PACKET)) {
        Y4mError::MpegTs
    } else {
        Y4mError::NotY4m
    }
}

/// Parses a header line (without its newline).
pub fn parse_header(line: &[u8]) -> Result<Y4mHeader, Y4mError> {
    let mut fields = line.split(|&b| b == b' ').filter(|f| !f.is_empty());
    if fields.next() != Some(Y4M_MAGIC) {
        return Err(Y4mError::NotY4m);
    }
    let (mut width, mut height, mut frame_rate) = (None, None, None);
    for field in fields {
        let (tag, value) = (field[0] as char, String::from_utf8_lossy(&field[1..]).into_owned());
        let bad = || Y4mError::BadField { field: tag, value: value.clone() };
        match tag {
            'W' => width = Some(value.parse::<u32>().map_err(|_| bad())?),
            'H' => height = Some(value.parse::<u32>().map_err(|_| bad())?),
            'F' => {
                let (num, den) = value.split_once(':').ok_or_else(bad)?;
                let (num, den) =
                    (num.parse::<u32>().map_err(|_| bad())?, den.parse::<u32>().map_err(|_| bad())?);
                if num == 0 || den == 0 {
                    return Err(bad());
                }
                frame_rate = Some(Rational::new(num, den));
            }
            'C' if !matches!(value.as_str(), "420" | "420jpeg" | "420paldv" | "420mpeg2") => {
                return Err(Y4mError::UnsupportedColorspace(value));
            }
            _ => {} // interlacing, aspect, comments and extensions do not change the planes
        }
    }
    let width = width.ok_or(Y4mError::MissingField("W (width)"))?;
    let height = height.ok_or(Y4mError::MissingField("H (height)"))?;
    let frame_rate = frame_rate.ok_or(Y4mError::MissingField("F (frame rate)"))?;
    check_size(width, height).map_err(Y4mError::Size)?;
    check_even(width, height).map_err(|_| Y4mError::OddSize { width, height })?;
    Ok(Y4mHeader { width, height, frame_rate })
}

/// Reads frames from a Y4M stream.
pub struct Y4mReader<R: Read> {
    input: BufReader<R>,
    header: Y4mHeader,
    index: u64,
}

impl<R: Read> std::fmt::Debug for Y4mReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Y4mReader").field("header", &self.header).field("index", &self.index).finish()
    }
}

impl<R: Read> Y4mReader<R> {
    /// Reads and checks the header; no frame is read yet.
    pub fn new(input: R) -> Result<Y4mReader<R>, Y4mError> {
        let mut input = BufReader::with_capacity(256 * 1024, input);
        let line = match read_line(&mut input)? {
            Line::Whole(line) => line,
            // Anything else first is not Y4M at all, however it ends.
            Line::Cut(start) if start.starts_with(Y4M_MAGIC) => return Err(Y4mError::TruncatedHeader),
            Line::Cut(start) => return Err(not_y4m(&start)),
            Line::End => return Err(Y4mError::NotY4m),
        };
        let header = parse_header(&line).map_err(|e| match e {
            Y4mError::NotY4m => not_y4m(&line),
            other => other,
        })?;
        Ok(Y4mReader { input, header, index: 0 })
    }

    /// What the header says.
    pub fn header(&self) -> Y4mHeader {
        self.header
    }

    /// The next frame, `Ok(None)` at a clean end of the input.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>, Y4mError> {
        let line = match read_line(&mut self.input)? {
            Line::End => return Ok(None),
            Line::Whole(line) | Line::Cut(line) => line,
        };
        if !line.starts_with(b"FRAME") {
            return Err(Y4mError::BadFrameHeader { index: self.index });
        }
        let need = self.header.frame_len();
        let mut data = BytesMut::zeroed(need);
        let mut got = 0;
        while got < need {
            match self.input.read(&mut data[got..]) {
                Ok(0) => return Err(Y4mError::TruncatedFrame { index: self.index, got, need }),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Y4mError::Io(e.to_string())),
            }
        }
        let time_base = self.header.frame_rate.recip();
        let frame =
            VideoFrame::from_i420(self.header.width, self.header.height, self.index as i64, time_base, data)
                .map_err(Y4mError::Size)?;
        self.index += 1;
        Ok(Some(frame))
    }
}

/// Appends a Y4M stream header for 4:2:0 frames of this size and rate.
pub fn write_header(header: &Y4mHeader, out: &mut Vec<u8>) {
    let Y4mHeader { width, height, frame_rate } = header;
    out.extend_from_slice(
        format!("YUV4MPEG2 W{width} H{height} F{}:{} Ip A1:1 C420jpeg\n", frame_rate.num, frame_rate.den)
            .as_bytes(),
    );
}

/// Appends one frame (`FRAME` and its planes, rows without padding).
pub fn write_frame(frame: &VideoFrame, out: &mut Vec<u8>) {
    out.extend_from_slice(b"FRAME\n");
    let (w, h) = (frame.width() as usize, frame.height() as usize);
    let dims = [(w, h), (w.div_ceil(2), h.div_ceil(2)), (w.div_ceil(2), h.div_ceil(2))];
    for (i, (pw, ph)) in dims.into_iter().enumerate() {
        let stride = frame.stride(i);
        for row in frame.plane(i).chunks(stride).take(ph) {
            out.extend_from_slice(&row[..pw]);
        }
    }
}

/// A line as read.
enum Line {
    /// Its bytes, without the newline.
    Whole(Vec<u8>),
    /// The input ended, or [`MAX_LINE`] bytes went by, before a newline.
    Cut(Vec<u8>),
    /// The input ended before any byte.
    End,
}

fn read_line(input: &mut impl BufRead) -> Result<Line, Y4mError> {
    let mut line = Vec::new();
    let n = input
        .by_ref()
        .take(MAX_LINE as u64 + 1)
        .read_until(b'\n', &mut line)
        .map_err(|e| Y4mError::Io(e.to_string()))?;
    Ok(match line.pop() {
        None if n == 0 => Line::End,
        Some(b'\n') => Line::Whole(line),
        Some(last) => {
            line.push(last);
            Line::Cut(line)
        }
        None => Line::End,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(header: &str, frames: u8, frame_len: usize) -> Vec<u8> {
        let mut out = format!("{header}\n").into_bytes();
        for i in 0..frames {
            out.extend_from_slice(b"FRAME\n");
            out.extend(std::iter::repeat_n(i, frame_len));
        }
        out
    }

    #[test]
    fn reads_the_header_and_every_frame_with_pts_in_frame_periods() {
        let data = stream("YUV4MPEG2 W4 H2 F30000:1001 It A1:1 C420jpeg XYSCSS=420JPEG", 3, 12);
        let mut reader = Y4mReader::new(&data[..]).unwrap();
        assert_eq!(
            reader.header(),
            Y4mHeader { width: 4, height: 2, frame_rate: Rational::new(30000, 1001) }
        );
        for i in 0..3u8 {
            let frame = reader.next_frame().unwrap().unwrap();
            assert_eq!((frame.width(), frame.height(), frame.pts()), (4, 2, i64::from(i)));
            assert_eq!(frame.time_base(), Rational::new(1001, 30000));
            assert!(frame.y().iter().chain(frame.u()).chain(frame.v()).all(|&b| b == i));
        }
        assert!(reader.next_frame().unwrap().is_none());
    }

    #[test]
    fn bad_headers_say_what_is_wrong() {
        let cases: [(&str, Y4mError); 7] = [
            ("RIFF W4 H2 F30:1", Y4mError::NotY4m),
            ("YUV4MPEG2 H2 F30:1", Y4mError::MissingField("W (width)")),
            ("YUV4MPEG2 W4 H2", Y4mError::MissingField("F (frame rate)")),
            ("YUV4MPEG2 W4 H2 F30:0", Y4mError::BadField { field: 'F', value: "30:0".into() }),
            ("YUV4MPEG2 Wx H2 F30:1", Y4mError::BadField { field: 'W', value: "x".into() }),
            ("YUV4MPEG2 W4 H2 F30:1 C444", Y4mError::UnsupportedColorspace("444".into())),
            ("YUV4MPEG2 W5 H2 F30:1", Y4mError::OddSize { width: 5, height: 2 }),
        ];
        for (header, expected) in cases {
            assert_eq!(parse_header(header.as_bytes()).unwrap_err(), expected, "{header}");
        }
        assert!(matches!(parse_header(b"YUV4MPEG2 W0 H2 F30:1"), Err(Y4mError::Size(_))));
        // MPEG-TS, the likeliest wrong input, is named as such.
        let mut ts = vec![0u8; 188 * 8];
        ts.iter_mut().step_by(188).for_each(|b| *b = 0x47);
        assert_eq!(Y4mReader::new(&ts[..]).unwrap_err(), Y4mError::MpegTs);
        assert_eq!(Y4mReader::new(&b"RIFF....WAVEfmt "[..]).unwrap_err(), Y4mError::NotY4m);
        assert!(matches!(parse_header(b"YUV4MPEG2 W9000 H2 F30:1"), Err(Y4mError::Size(_))));
        assert!(parse_header(b"YUV4MPEG2 W4 H2 F30:1 C420p10").is_err(), "10-bit is refused");
    }

    #[test]
    fn truncated_input_is_a_typed_error() {
        assert_eq!(Y4mReader::new(&b"YUV4MPEG2 W4 H2"[..]).unwrap_err(), Y4mError::TruncatedHeader);
        assert_eq!(Y4mReader::new(&b""[..]).unwrap_err(), Y4mError::NotY4m);
        assert_eq!(Y4mReader::new(&b"RIFF....WAVEfmt "[..]).unwrap_err(), Y4mError::NotY4m);
        let mut data = stream("YUV4MPEG2 W4 H2 F30:1", 2, 12);
        data.truncate(data.len() - 5);
        let mut reader = Y4mReader::new(&data[..]).unwrap();
        assert!(reader.next_frame().unwrap().is_some());
        assert_eq!(reader.next_frame().unwrap_err(), Y4mError::TruncatedFrame { index: 1, got: 7, need: 12 });
        let mut garbage = Y4mReader::new(&b"YUV4MPEG2 W4 H2 F30:1\nFRAMX\n"[..]).unwrap();
        assert_eq!(garbage.next_frame().unwrap_err(), Y4mError::BadFrameHeader { index: 0 });
    }

    #[test]
    fn reads_what_ffmpeg_writes() {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-frames:v", "5"])
            .args(["-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", "-"])
            .output()
            .expect("ffmpeg runs (scripts/setup.sh installs it)");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let mut reader = Y4mReader::new(&out.stdout[..]).unwrap();
        assert_eq!(reader.header(), Y4mHeader { width: 64, height: 48, frame_rate: Rational::new(25, 1) });
        let mut frames = 0;
        while let Some(frame) = reader.next_frame().unwrap() {
            assert_eq!(frame.pts(), frames);
            frames += 1;
        }
        assert_eq!(frames, 5);
    }

    #[test]
    fn what_is_written_reads_back_frame_for_frame() {
        let header = Y4mHeader { width: 8, height: 4, frame_rate: Rational::new(30, 1) };
        let mut out = Vec::new();
        write_header(&header, &mut out);
        let mut pattern = crate::TestPattern::new(8, 4, Rational::new(30, 1)).unwrap();
        let frames: Vec<VideoFrame> = (0..3).map(|_| pattern.next_frame()).collect();
        for frame in &frames {
            write_frame(frame, &mut out);
        }
        let mut reader = Y4mReader::new(&out[..]).unwrap();
        assert_eq!(reader.header(), header);
        for frame in &frames {
            let back = reader.next_frame().unwrap().unwrap();
            assert_eq!((back.y(), back.u(), back.v()), (frame.y(), frame.u(), frame.v()));
        }
        assert!(reader.next_frame().unwrap().is_none());
    }
}
