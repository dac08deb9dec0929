//! The mirrored framebuffer: 32-bit pixels as the server sends them in the
//! pixel format we ask for (little-endian 0x00RRGGBB, so bytes B, G, R, X).

#[derive(Debug, Clone)]
pub struct Framebuffer {
    pub width: u16,
    pub height: u16,
    pub pixels: Vec<u8>,
}

impl Framebuffer {
    pub fn new(width: u16, height: u16) -> Self {
        Self {
            width,
            height,
            pixels: vec![0; width as usize * height as usize * 4],
        }
    }

    fn stride(&self) -> usize {
        self.width as usize * 4
    }

    /// Whether a rectangle lies inside the framebuffer.
    pub fn contains(&self, x: u16, y: u16, w: u16, h: u16) -> bool {
        x as u32 + w as u32 <= self.width as u32 && y as u32 + h as u32 <= self.height as u32
    }

    /// Copies raw rectangle pixels (`w * h * 4` bytes, row-major) in.
    pub fn put_raw(&mut self, x: u16, y: u16, w: u16, h: u16, data: &[u8]) {
        let (stride, row) = (self.stride(), w as usize * 4);
        for r in 0..h as usize {
            let dst = (y as usize + r) * stride + x as usize * 4;
            self.pixels[dst..dst + row].copy_from_slice(&data[r * row..(r + 1) * row]);
        }
    }

    /// CopyRect: moves a rectangle within the framebuffer.
    pub fn copy_rect(&mut self, sx: u16, sy: u16, x: u16, y: u16, w: u16, h: u16) {
        let (stride, row) = (self.stride(), w as usize * 4);
        let rows: Box<dyn Iterator<Item = usize>> = if sy < y {
            Box::new((0..h as usize).rev())
        } else {
            Box::new(0..h as usize)
        };
        for r in rows {
            let src = (sy as usize + r) * stride + sx as usize * 4;
            let dst = (y as usize + r) * stride + x as usize * 4;
            self.pixels.copy_within(src..src + row, dst);
        }
    }

    /// RGB pixel at (x, y).
    pub fn rgb(&self, x: usize, y: usize) -> [u8; 3] {
        let i = y * self.stride() + x * 4;
        [self.pixels[i + 2], self.pixels[i + 1], self.pixels[i]]
    }
}
