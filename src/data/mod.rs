//! Images in: files of any common format, PIL-exact resizing, and the resized image banks that training and
//! evaluation draw from.

mod bank;
mod bapps;
mod cifar;
mod dataset;
mod folder;
mod image_file;
mod mat;
mod npy;
mod open;
mod parallel;
mod resize;
mod samples;
mod stl10;
mod svhn;

pub use bank::ImageBank;
pub use bapps::{is_bapps, open_bapps, Bapps, JndPair, TwoAfcTriplet};
pub use cifar::{open_cifar10, Cifar10};
pub use dataset::{open_images, ImageSource};
pub use folder::{open_folder, ImageFolder};
pub use image_file::{load_resized_bytes, load_rgb8, RgbImage8};
pub use mat::{read_mat, MatArray, MatData, MatFile, MatWant};
pub use npy::{read_npy_f64, read_npy_scalar};
pub use open::open_dataset;
pub use resize::{resize_bilinear_pil, to_chw_bytes, to_unit_chw};
pub use samples::{sample_patches, samples_dir};
pub use stl10::{open_stl10, Stl10};
pub use svhn::{open_svhn, Svhn};
