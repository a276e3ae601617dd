//! Image bytes → normalised input tensor, as torchvision's
//! `Resize(256), CenterCrop(224), ToTensor(), Normalize(ImageNet)` does it.

use std::io::Cursor;

use burn::tensor::{Device, Tensor, TensorData};
use image::imageops::FilterType;
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageError, ImageReader, Limits, RgbImage};

/// ImageNet channel means (torchvision's `Normalize`).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// Why an image could not be turned into an input.
#[derive(Debug, thiserror::Error)]
pub enum ImageInputError {
    /// Not a format this tool decodes.
    #[error("this file is not an image in a supported format (PNG, JPEG, WebP, GIF or BMP)")]
    NotAnImage,
    /// A known format whose data is broken.
    #[error("the image could not be decoded, it may be corrupt or incomplete: {0}")]
    Corrupt(String),
    /// More pixels than the tool will decode.
    #[error(
        "the image is {width}×{height} pixels; images up to {max_megapixels} megapixels are \
         accepted. Scale it down first"
    )]
    TooLarge {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The limit.
        max_megapixels: u64,
    },
    /// A width or height of zero.
    #[error("the image is {width}×{height} pixels: it has no pixels to classify")]
    Empty {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// So long and thin that resizing its short side would make it larger than the limit.
    #[error(
        "the image is {width}×{height} pixels: resizing its short side to {resize} would make it \
         {resized_width}×{resized_height}, over the {max_megapixels} megapixels accepted. Crop it \
         closer to a square first"
    )]
    TooElongated {
        /// Width in pixels.
        width: u32,
        /// Height in pixels.
        height: u32,
        /// The short side's length after resizing.
        resize: u32,
        /// Width after resizing.
        resized_width: u64,
        /// Height after resizing.
        resized_height: u64,
        /// The limit.
        max_megapixels: u64,
    },
}

/// The preprocessing pipeline's parameters (torchvision's ImageNet evaluation transform).
#[derive(Clone, Debug, PartialEq)]
pub struct Preprocess {
    /// Length the short side is resized to (256).
    pub resize: u32,
    /// Side of the centred square crop (224).
    pub crop: u32,
    /// Largest image decoded or resized, in pixels (bounds memory: a 10000×10000 photo is
    /// accepted, a 10000×1 strip, which would be resized to 2 560 000×256, is not).
    pub max_pixels: u64,
}

impl Default for Preprocess {
    fn default() -> Self {
        Self { resize: 256, crop: 224, max_pixels: 120_000_000 }
    }
}

impl Preprocess {
    /// Decodes, orients, resizes, crops and normalises: `[1, 3, crop, crop]`.
    pub fn input(&self, bytes: &[u8], device: &Device) -> Result<Tensor<4>, ImageInputError> {
        Ok(normalise(&self.image(bytes)?, device))
    }

    /// The resized and cropped RGB image the network sees (for display under the maps).
    pub fn image(&self, bytes: &[u8]) -> Result<RgbImage, ImageInputError> {
        let (image, orientation) = self.decode(bytes)?;
        let mut resized = self.resize_short_side(&image, orientation);
        resized.apply_orientation(orientation);
        Ok(self.center_crop(resized.to_rgb8()))
    }

    /// The same from decoded RGBA pixels (a canvas's `ImageData`), row by row.
    pub fn image_from_rgba(&self, rgba: Vec<u8>, width: u32, height: u32) -> Result<RgbImage, ImageInputError> {
        self.check_size(width, height)?;
        let expected = 4 * u64::from(width) * u64::from(height);
        let found = rgba.len();
        let pixels = image::RgbaImage::from_raw(width, height, rgba).ok_or_else(|| {
            ImageInputError::Corrupt(format!(
                "{found} bytes of RGBA for a {width}×{height} image, which needs {expected}"
            ))
        })?;
        let resized = self.resize_short_side(&DynamicImage::ImageRgba8(pixels), Orientation::NoTransforms);
        Ok(self.center_crop(resized.to_rgb8()))
    }

    /// Refuses sizes that have no pixels or would not fit in memory, decoded or resized (a
    /// quarter turn swaps the resized sides, not their product).
    fn check_size(&self, width: u32, height: u32) -> Result<(), ImageInputError> {
        let max_megapixels = self.max_pixels / 1_000_000;
        if width == 0 || height == 0 {
            return Err(ImageInputError::Empty { width, height });
        }
        if u64::from(width) * u64::from(height) > self.max_pixels {
            return Err(ImageInputError::TooLarge { width, height, max_megapixels });
        }
        let (resized_width, resized_height) = short_side_to(width, height, self.resize);
        if resized_width * resized_height > self.max_pixels {
            return Err(ImageInputError::TooElongated {
                width,
                height,
                resize: self.resize,
                resized_width,
                resized_height,
                max_megapixels,
            });
        }
        Ok(())
    }

    fn decode(&self, bytes: &[u8]) -> Result<(DynamicImage, Orientation), ImageInputError> {
        let reader = ImageReader::new(Cursor::new(bytes))
            .with_guessed_format()
            .map_err(|error| ImageInputError::Corrupt(error.to_string()))?;
        if reader.format().is_none() {
            return Err(ImageInputError::NotAnImage);
        }
        let mut decoder = reader.into_decoder().map_err(decode_error)?;
        let (width, height) = decoder.dimensions();
        self.check_size(width, height)?;
        let mut limits = Limits::default();
        limits.max_alloc = Some(self.max_pixels * 8);
        decoder.set_limits(limits).map_err(decode_error)?;
        let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
        let image = DynamicImage::from_decoder(decoder).map_err(decode_error)?;
        Ok((image, orientation))
    }

    /// Resizes before orienting, so a huge photo is never copied at full size; the target
    /// size is the oriented image's, swapped back for quarter turns.
    fn resize_short_side(&self, image: &DynamicImage, orientation: Orientation) -> DynamicImage {
        let (width, height) = (image.width(), image.height());
        let quarter_turn = matches!(
            orientation,
            Orientation::Rotate90
                | Orientation::Rotate270
                | Orientation::Rotate90FlipH
                | Orientation::Rotate270FlipH
        );
        let (shown_width, shown_height) = if quarter_turn { (height, width) } else { (width, height) };
        // `check_size` bounded the product, so each side fits in a u32.
        let (new_width, new_height) = short_side_to(shown_width, shown_height, self.resize);
        let (new_width, new_height) = (new_width as u32, new_height as u32);
        let (new_width, new_height) =
            if quarter_turn { (new_height, new_width) } else { (new_width, new_height) };
        // PIL's BILINEAR, which torchvision uses, is a triangle filter widened when shrinking.
        image.resize_exact(new_width, new_height, FilterType::Triangle)
    }

    fn center_crop(&self, image: RgbImage) -> RgbImage {
        let offset = |length: u32| ((f64::from(length) - f64::from(self.crop)) / 2.0).round_ties_even().max(0.0) as u32;
        let (left, top) = (offset(image.width()), offset(image.height()));
        image::imageops::crop_imm(&image, left, top, self.crop, self.crop).to_image()
    }
}

/// torchvision's `Resize(size)`: the short side becomes `size`, the long side keeps the aspect
/// ratio, truncated. Both sides must be non-zero.
fn short_side_to(width: u32, height: u32, size: u32) -> (u64, u64) {
    let size = u64::from(size);
    let long = |long: u32, short: u32| size * u64::from(long) / u64::from(short);
    if width <= height { (size, long(height, width)) } else { (long(width, height), size) }
}

fn decode_error(error: ImageError) -> ImageInputError {
    match error {
        ImageError::Unsupported(_) => ImageInputError::NotAnImage,
        other => ImageInputError::Corrupt(other.to_string()),
    }
}

/// `[1, 3, height, width]`: values / 255, minus the ImageNet mean, over its std.
pub fn normalise(image: &RgbImage, device: &Device) -> Tensor<4> {
    let (width, height) = (image.width() as usize, image.height() as usize);
    let mut planar = vec![0.0f32; 3 * width * height];
    for (index, pixel) in image.pixels().enumerate() {
        for channel in 0..3 {
            let value = f32::from(pixel[channel]) / 255.0;
            planar[channel * width * height + index] =
                (value - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel];
        }
    }
    Tensor::from_data(TensorData::new(planar, [1, 3, height, width]), device)
}
