//! Screenshot encoding: PNG with the fastest compression for the model (a
//! screenshot is taken on every action, so speed beats size), and region
//! scaling for zoom and for showing the model a smaller screen.

use super::Framebuffer;

/// A packed RGB image.
pub struct Rgb {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

impl Rgb {
    pub fn from_framebuffer(fb: &Framebuffer) -> Self {
        let mut data = Vec::with_capacity(fb.width as usize * fb.height as usize * 3);
        for px in fb.pixels.chunks_exact(4) {
            data.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        Self {
            width: fb.width as u32,
            height: fb.height as u32,
            data,
        }
    }
}

/// The region (x, y, w, h) of `fb`, resized to `out_w` x `out_h` by
/// averaging the source pixels each output pixel covers (readable text when
/// shrinking, plain pixel repetition when enlarging).
pub fn scale_region(
    fb: &Framebuffer,
    (x, y, w, h): (u32, u32, u32, u32),
    out_w: u32,
    out_h: u32,
) -> Rgb {
    let mut data = Vec::with_capacity(out_w as usize * out_h as usize * 3);
    for oy in 0..out_h {
        let y0 = y + oy * h / out_h;
        let y1 = (y + ((oy + 1) * h).div_ceil(out_h)).max(y0 + 1).min(y + h);
        for ox in 0..out_w {
            let x0 = x + ox * w / out_w;
            let x1 = (x + ((ox + 1) * w).div_ceil(out_w)).max(x0 + 1).min(x + w);
            let (mut sum, mut n) = ([0u32; 3], 0u32);
            for sy in y0..y1 {
                for sx in x0..x1 {
                    let p = fb.rgb(sx as usize, sy as usize);
                    sum[0] += p[0] as u32;
                    sum[1] += p[1] as u32;
                    sum[2] += p[2] as u32;
                    n += 1;
                }
            }
            data.extend_from_slice(&[(sum[0] / n) as u8, (sum[1] / n) as u8, (sum[2] / n) as u8]);
        }
    }
    Rgb {
        width: out_w,
        height: out_h,
        data,
    }
}

pub fn encode_png(image: &Rgb) -> Result<Vec<u8>, png::EncodingError> {
    let mut out = Vec::with_capacity(image.data.len() / 8);
    let mut encoder = png::Encoder::new(&mut out, image.width, image.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fastest);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&image.data)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_by_averaging_and_encodes() {
        let mut fb = Framebuffer::new(4, 2);
        // Left half white, right half black.
        for y in 0..2 {
            fb.put_raw(0, y, 2, 1, &[255; 8]);
        }
        let half = scale_region(&fb, (0, 0, 4, 2), 2, 1);
        assert_eq!(half.data, [255, 255, 255, 0, 0, 0]);
        let mixed = scale_region(&fb, (1, 0, 2, 2), 1, 1);
        assert_eq!(mixed.data, [127, 127, 127]);
        let png = encode_png(&Rgb::from_framebuffer(&fb)).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
