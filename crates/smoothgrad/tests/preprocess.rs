//! Decoding and torchvision's ImageNet transform.

mod common;

use common::*;
use smoothgrad::burn::tensor::{Device, Tensor, TensorData};
use smoothgrad::{ImageInputError, Preprocess};

const CHELSEA: &[u8] = include_bytes!("../../../tests/fixtures/chelsea.png");
const CHELSEA_ROTATED: &[u8] = include_bytes!("../../../tests/fixtures/chelsea_rot.jpg");
const CHELSEA_GREY: &[u8] = include_bytes!("../../../tests/fixtures/chelsea_grey.png");
const CHELSEA_RGBA: &[u8] = include_bytes!("../../../tests/fixtures/chelsea_rgba.png");
const PREPROCESS_REFERENCE: &[u8] =
    include_bytes!("../../../tests/fixtures/preprocess_reference.safetensors");

fn device() -> Device {
    Device::flex()
}

fn torchvision(name: &str) -> Vec<f32> {
    let file = safetensors::SafeTensors::deserialize(PREPROCESS_REFERENCE).unwrap();
    let view = file.tensor(name).unwrap();
    view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

fn ours(bytes: &[u8]) -> Vec<f32> {
    let input = Preprocess::default().input(bytes, &device()).unwrap();
    assert_eq!(input.dims(), [1, 3, 224, 224]);
    input.into_data().try_to_vec::<f32>().unwrap()
}

/// (max, mean) absolute difference in normalised units (one 8-bit level ≈ 0.017).
fn difference(a: &[f32], b: &[f32]) -> (f32, f32) {
    let max = a.iter().zip(b).fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    let mean = a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    (max, mean)
}

fn assert_like_torchvision(bytes: &[u8], reference: &str) {
    let (max, mean) = difference(&ours(bytes), &torchvision(reference));
    println!("{reference}: max |ours − torchvision| = {max:.4}, mean = {mean:.5}");
    assert!(mean < 0.01, "{reference}: mean difference {mean}");
    assert!(max < 0.15, "{reference}: max difference {max}");
}

#[test]
fn matches_torchvision_on_a_photo() {
    assert_like_torchvision(CHELSEA, "chelsea");
}

#[test]
fn honours_exif_orientation() {
    assert_like_torchvision(CHELSEA_ROTATED, "chelsea_rot");
}

#[test]
fn grey_images_become_rgb() {
    assert_like_torchvision(CHELSEA_GREY, "chelsea_grey");
}

#[test]
fn alpha_is_dropped_as_pil_convert_rgb_does() {
    assert_like_torchvision(CHELSEA_RGBA, "chelsea");
}

#[test]
fn top5_agree_with_torchvision_preprocessing() {
    let device = device();
    let model = load(&narrow_resnet50(), MODEL, &device);
    let top5 = |values: Vec<f32>| {
        let input = Tensor::<4>::from_data(TensorData::new(values, [1, 3, 224, 224]), &device);
        let logits = model.forward(input).into_data().try_to_vec::<f32>().unwrap();
        let mut order: Vec<usize> = (0..logits.len()).collect();
        order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
        order.truncate(5);
        order
    };
    assert_eq!(top5(ours(CHELSEA)), top5(torchvision("chelsea")));
}

#[test]
fn text_is_not_an_image() {
    let error = Preprocess::default().input(b"hello, this is not an image", &device()).unwrap_err();
    assert!(matches!(error, ImageInputError::NotAnImage), "{error}");
}

#[test]
fn corrupt_image_is_reported() {
    let error = Preprocess::default().input(&CHELSEA[..CHELSEA.len() / 3], &device()).unwrap_err();
    assert!(matches!(error, ImageInputError::Corrupt(_)), "{error}");
}

/// A BMP header announcing `width × height` pixels and carrying none.
fn bmp_header(width: u32, height: u32) -> Vec<u8> {
    let mut bytes = b"BM".to_vec();
    bytes.extend(0u32.to_le_bytes()); // file size (unused)
    bytes.extend(0u32.to_le_bytes()); // reserved
    bytes.extend(54u32.to_le_bytes()); // pixel data offset
    bytes.extend(40u32.to_le_bytes()); // BITMAPINFOHEADER
    bytes.extend(width.to_le_bytes());
    bytes.extend(height.to_le_bytes());
    bytes.extend(1u16.to_le_bytes()); // planes
    bytes.extend(24u16.to_le_bytes()); // bits per pixel
    bytes.extend([0u8; 24]); // no compression, sizes, resolution, palette
    bytes
}

#[test]
fn oversized_image_is_refused_before_decoding() {
    let error = Preprocess::default().input(&bmp_header(30_000, 30_000), &device()).unwrap_err();
    let ImageInputError::TooLarge { width, height, .. } = error else {
        panic!("expected TooLarge, got {error}");
    };
    assert_eq!((width, height), (30_000, 30_000));
}

#[test]
fn a_long_thin_strip_is_refused_before_decoding_and_an_empty_one_too() {
    // 10000×1 would be resized to 2 560 000×256: 655 megapixels.
    let error = Preprocess::default().input(&bmp_header(10_000, 1), &device()).unwrap_err();
    let ImageInputError::TooElongated { resized_width, resized_height, .. } = error else {
        panic!("expected TooElongated, got {error}");
    };
    assert_eq!((resized_width, resized_height), (2_560_000, 256));
    assert!(error.to_string().contains("Crop it closer to a square"), "{error}");
    let error = Preprocess::default().image_from_rgba(Vec::new(), 0, 0).unwrap_err();
    assert!(matches!(error, ImageInputError::Empty { width: 0, height: 0 }), "{error}");
}

#[test]
fn a_banner_within_the_limit_is_processed() {
    let banner = image::RgbaImage::from_pixel(3000, 12, image::Rgba([200, 100, 50, 255]));
    let crop = Preprocess::default().image_from_rgba(banner.into_raw(), 3000, 12).unwrap();
    assert_eq!(crop.dimensions(), (224, 224));
    assert_eq!(crop.get_pixel(112, 112), &image::Rgb([200, 100, 50]));
}

#[test]
fn a_10000_by_10000_photo_is_processed() {
    let image = image::RgbImage::from_fn(10_000, 10_000, |x, y| image::Rgb([(x / 40) as u8, (y / 40) as u8, 128]));
    let mut png = Vec::new();
    image::DynamicImage::ImageRgb8(image)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let input = Preprocess::default().input(&png, &device()).unwrap();
    assert_eq!(input.dims(), [1, 3, 224, 224]);
}

#[test]
fn canvas_pixels_give_the_same_crop_as_the_file() {
    let decoded = image::load_from_memory(CHELSEA).unwrap().to_rgba8();
    let (width, height) = decoded.dimensions();
    let from_pixels = Preprocess::default().image_from_rgba(decoded.into_raw(), width, height).unwrap();
    assert_eq!(from_pixels, Preprocess::default().image(CHELSEA).unwrap());
}

#[test]
fn canvas_pixels_of_the_wrong_length_are_refused() {
    let error = Preprocess::default().image_from_rgba(vec![0; 10], 4, 4).unwrap_err();
    assert!(matches!(error, ImageInputError::Corrupt(_)), "{error}");
    assert!(error.to_string().contains("needs 64"), "{error}");
}
