//! The matrix products that the convolutions lower to, with the kernel chosen by shape.
//!
//! Without autotune (which the page cannot use: it gives wrong results on WebGPU in wasm) burn's
//! GPU backend runs every product with cubek's default, its unit kernel with the largest tiles.
//! Timed by burn's autotune on an H100 for the products of ResNet-50
//! (`docs/benchmarks/h100-2026-11-27-kernels.md`), that default was never the fastest and at batch
//! 1 never the runner-up: batched, the same kernel with the smallest tiles was up to 20 % faster;
//! at batch 1 its double-buffered variant was faster still (20 against 26 µs, 256×4096×64);
//! on long and narrow products (inner dimension 1024 or more, at most 131 072 outputs: batch 1's
//! deep layers) cubek's `gemm` kernel took 2–10× less time (34 against 337 µs for 512×64×2048).
//! Whole passes on an H200 carried `gemm` further, up to 2^20 outputs
//! (`docs/benchmarks/h200-2026-11-29-ab.jsonl`).

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind, binary};
use burn::backend::autodiff::{NodeId, checkpoint::base::Checkpointer, grads::Gradients};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Dispatch, TensorMetadata, backend_extension};
use burn::tensor::Tensor;
use std::str::FromStr;
use std::sync::{Mutex, PoisonError, RwLock};

/// The kernel that runs one product on burn's GPU backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProductKernel {
    /// cubek's unit kernel (one thread, one tile) with its smallest tiles.
    SmallTiles,
    /// cubek's double-buffered unit kernel with its largest tiles.
    DoubleBuffered,
    /// cubek's `gemm`, which splits the inner dimension across a subgroup.
    Gemm,
    /// Our register-blocked kernel (`tiled_product.rs`) with this tile.
    Tiled(crate::ProductTile),
}

/// Which kernels run the convolutions' products on burn's GPU backend, for the whole process
/// ([`use_product_kernels`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProductKernels {
    /// cubek's, chosen by [`ProductKernel::for_shape`]: what every measurement so far ran.
    #[default]
    Cubek,
    /// Ours, the tile chosen by shape (`ProductTile::for_shape`), vectorized
    /// (`ProductTile::vectorized`) or not. Not yet timed on a GPU.
    Tiled { vectorized: bool },
    /// Ours with this tile everywhere, for benchmarks and tests.
    Fixed(crate::ProductTile),
}

static PRODUCT_KERNELS: RwLock<ProductKernels> = RwLock::new(ProductKernels::Cubek);

/// Chooses the kernels for every product that follows, in this process (a benchmark's or a
/// page's setting, like burn's autotune: not a property of one model). Read when the backend runs
/// a product, which may be after it was queued: sync the device before changing it.
pub fn use_product_kernels(kernels: ProductKernels) {
    *PRODUCT_KERNELS.write().unwrap_or_else(PoisonError::into_inner) = kernels;
}

/// Our tiles by name, for [`ProductKernels::Fixed`] on the command line.
const TILES: [(&str, crate::ProductTile); 4] = {
    use crate::ProductTile;
    [("large", ProductTile::LARGE), ("tall", ProductTile::TALL), ("wide", ProductTile::WIDE), ("small", ProductTile::SMALL)]
};

impl ProductKernels {
    /// The setting's name on the command line: `cubek`, `tiled`, `tiled-v4`, or a fixed tile as
    /// `tiled-large` (`-tall`, `-wide`, `-small`), vectorized `tiled-v4-large` (a tile of none of
    /// these names: its fields).
    pub fn name(self) -> String {
        let vectorized = |yes: bool| if yes { "-v4" } else { "" };
        match self {
            Self::Cubek => "cubek".into(),
            Self::Tiled { vectorized: yes } => format!("tiled{}", vectorized(yes)),
            Self::Fixed(tile) => match TILES.iter().find(|&&(_, named)| named == tile || named.vectorized() == tile) {
                Some((name, _)) => format!("tiled{}-{name}", vectorized(tile.vector > 1)),
                None => format!("{tile:?}"),
            },
        }
    }

    /// The setting [`use_product_kernels`] made last.
    pub fn current() -> Self {
        *PRODUCT_KERNELS.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// The kernel for a product of `batch` times `rows × inner` by `inner × columns` on a device
    /// with subgroup operations or not.
    pub fn kernel(self, batch: usize, rows: usize, inner: usize, columns: usize, subgroups: bool) -> ProductKernel {
        use crate::ProductTile;
        match self {
            Self::Cubek => ProductKernel::for_shape(batch, rows, inner, columns, subgroups),
            Self::Tiled { vectorized } => {
                let tile = ProductTile::for_shape(batch, rows, columns);
                ProductKernel::Tiled(if vectorized { tile.vectorized() } else { tile })
            }
            Self::Fixed(tile) => ProductKernel::Tiled(tile),
        }
    }
}

impl FromStr for ProductKernels {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let parsed = match name.strip_prefix("tiled") {
            None => (name == "cubek").then_some(Self::Cubek),
            Some(rest) => {
                let (vectorized, rest) = rest.strip_prefix("-v4").map_or((false, rest), |rest| (true, rest));
                match rest.strip_prefix('-') {
                    None => rest.is_empty().then_some(Self::Tiled { vectorized }),
                    Some(tile) => TILES.iter().find(|&&(named, _)| named == tile).map(|&(_, tile)| {
                        Self::Fixed(if vectorized { tile.vectorized() } else { tile })
                    }),
                }
            }
        };
        parsed.ok_or_else(|| {
            format!("product kernels {name:?}: expected cubek, tiled or tiled-v4, or tiled[-v4]-large|tall|wide|small")
        })
    }
}

/// One product as it reached burn's GPU backend: each operand's batch (1 where broadcast), the
/// matrix dimensions, and which operands are transposed views (the inner dimension, for the lhs,
/// or the columns, for the rhs, not contiguous).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProductShape {
    /// The lhs's batch.
    pub lhs_batch: usize,
    /// The rhs's batch.
    pub rhs_batch: usize,
    /// Rows of the lhs and the output.
    pub rows: usize,
    /// The dimension summed over.
    pub inner: usize,
    /// Columns of the rhs and the output.
    pub columns: usize,
    /// Whether the lhs is a transposed view.
    pub lhs_transposed: bool,
    /// Whether the rhs is a transposed view.
    pub rhs_transposed: bool,
}

static RECORDED_PRODUCTS: Mutex<Option<Vec<ProductShape>>> = Mutex::new(None);

/// The products that `work` runs on burn's GPU backend on `device` (none elsewhere), in the order
/// the backend ran them: what the benchmark of the products alone (`bench products`,
/// `examples/bench/products.rs`) replays. The device is synced before and after, as the backend
/// runs queued work later (work queued before is not counted). One recording at a time, for the
/// whole process.
pub fn record_products(device: &burn::tensor::Device, work: impl FnOnce()) -> Vec<ProductShape> {
    /// Ends the recording however `work` ends.
    struct Recording;
    impl Drop for Recording {
        fn drop(&mut self) {
            recorded_products().take();
        }
    }
    let sync = || device.sync().expect("the device ran the recorded work");
    sync();
    let _recording = Recording;
    *recorded_products() = Some(Vec::new());
    work();
    sync();
    recorded_products().take().unwrap_or_default()
}

/// What [`record_products`] records into, `None` while it records nothing.
fn recorded_products() -> std::sync::MutexGuard<'static, Option<Vec<ProductShape>>> {
    RECORDED_PRODUCTS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Inner dimensions from which [`ProductKernel::Gemm`] pays.
const GEMM_FROM_INNER: usize = 1024;
/// The most outputs (batch × rows × columns) for [`ProductKernel::Gemm`]: up to 2^20 it takes
/// micro-batch 10's and some of 25's deep layers, where SmoothGrad-50 on an H200 took 156 against
/// 159 ms at micro-batch 10 and 99.3 against 100.4 ms at 25 (two alternating rounds each, which
/// agreed within 0.4 ms) compared with autotune's bound, 131 072; at micro-batch 50 (all beyond
/// 2^20) `gemm` on every product with an inner dimension of 1024 or more took 129 against 89 ms,
/// so the unit kernel keeps those.
const GEMM_UP_TO_OUTPUTS: usize = 1 << 20;

/// The most outputs for [`ProductKernel::DoubleBuffered`]. Every product of one image is below
/// (ResNet-50's largest: 256 × 3136 and the stem's 64 × 12 544); beyond are the larger products
/// over a whole batch of the channels-last lowering (`conv.rs`), which get the kernel of batched
/// products of the same size (autotune's pick for those, per image); a guess, not timed for them.
const DOUBLE_BUFFERED_UP_TO_OUTPUTS: usize = 1 << 20;

impl ProductKernel {
    /// The kernel for `batch` products of `[rows, inner]` by `[inner, columns]` on a device that
    /// has subgroup operations (`gemm` sums across a subgroup) or not.
    ///
    /// wgpu's WebGPU backend (in wasm) never requests subgroups, so there every product takes the
    /// unit kernel (autotune's wrong results there were its candidates' subgroup operations).
    /// Vulkan on a GPU has them; lavapipe (Mesa's CPU Vulkan) runs them, but cubecl does not
    /// count a CPU adapter's, and there `gemm` measured slower.
    pub fn for_shape(
        batch: usize,
        rows: usize,
        inner: usize,
        columns: usize,
        subgroups: bool,
    ) -> Self {
        let outputs = batch * rows * columns;
        let long_and_narrow = inner >= GEMM_FROM_INNER && outputs <= GEMM_UP_TO_OUTPUTS;
        if long_and_narrow && subgroups {
            Self::Gemm
        } else if batch == 1 && outputs <= DOUBLE_BUFFERED_UP_TO_OUTPUTS {
            Self::DoubleBuffered
        } else {
            Self::SmallTiles
        }
    }
}

/// Batched matrix products (`[b, m, k]` by `[b, k, n]`, either batch may be 1) as a backend
/// operation: on burn's GPU backend through the kernel [`ProductKernel::for_shape`] chooses,
/// elsewhere burn's own.
#[backend_extension(Autodiff, Cube: cfg(feature = "wgpu"), Flex: cfg(feature = "flex"), Fusion: cfg(feature = "wgpu"))]
pub trait ConvProductBackend: Backend {
    /// `lhs · rhs`, batch by batch.
    #[fusion(dtype = lhs, shape = burn::tensor::Shape::new([lhs[0].max(rhs[0]), lhs[1], rhs[2]]))]
    fn conv_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }
}

/// `lhs · rhs` through [`ConvProductBackend`].
pub fn conv_product(lhs: Tensor<3>, rhs: Tensor<3>) -> Tensor<3> {
    Tensor::from_dispatch(<Dispatch as ConvProductBackend>::conv_product(
        lhs.into_dispatch(),
        rhs.into_dispatch(),
    ))
}

#[cfg(feature = "flex")]
impl ConvProductBackend for burn::backend::Flex {}

#[cfg(feature = "wgpu")]
impl ConvProductBackend for burn_cubecl::CubeBackend {
    fn conv_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        use burn::backend::ops::FloatTensorOps;
        use burn_cubecl::cubecl::features::Plane;
        use burn_cubecl::kernel::matmul::init_matmul_output;

        let [batch, rows, inner] = lhs.shape().dims();
        let [rhs_batch, _, columns] = rhs.shape().dims();
        let subgroups = lhs.client.properties().features.plane.contains(Plane::Ops);
        if let Some(recorded) = recorded_products().as_mut() {
            let transposed = |tensor: &Self::FloatTensorPrimitive| tensor.meta.strides()[2] != 1;
            let (lhs_transposed, rhs_transposed) = (transposed(&lhs), transposed(&rhs));
            recorded.push(ProductShape { lhs_batch: batch, rhs_batch, rows, inner, columns, lhs_transposed, rhs_transposed });
        }
        let batch = batch.max(rhs_batch);
        // Ours sums in the operands' type; cubek sums f16 products in f32 (`precision.rs`).
        let kernels = match lhs.dtype {
            burn::tensor::DType::F32 => ProductKernels::current(),
            _ => ProductKernels::Cubek,
        };
        let kernel = kernels.kernel(batch, rows, inner, columns, subgroups);
        let out = init_matmul_output(&lhs, &rhs, lhs.dtype);
        match launch_product(kernel, lhs.clone(), rhs.clone(), out.clone()) {
            Ok(()) => out,
            // A kernel declines what it cannot tile (`gemm`: an inner dimension that is no multiple of
            // the subgroup size; ours: more cubes than the device launches): cubek's default.
            Err(_) => Self::float_matmul(lhs, rhs),
        }
    }
}

/// Launches `kernel` for `out = lhs · rhs` on burn's GPU backend.
#[cfg(feature = "wgpu")]
fn launch_product(
    kernel: ProductKernel,
    lhs: burn_cubecl::tensor::CubeTensor,
    rhs: burn_cubecl::tensor::CubeTensor,
    out: burn_cubecl::tensor::CubeTensor,
) -> Result<(), cubek::matmul::definition::MatmulSetupError> {
    use burn::backend::cubecl::dtype_to_storage_type;
    use cubek::matmul::definition::{MatmulElems, MatmulGlobalElems};
    use cubek::matmul::multi_level::Strategy;
    use cubek::matmul::multi_level::routines::{
        TileSizeSelection, batch::double_unit::DoubleUnitSelectionArgs,
        batch::simple_unit::SimpleUnitSelectionArgs, gemm::GemmStrategy,
    };
    use cubek::matmul::routine::BlueprintStrategy::Inferred;
    use cubek::std::InputBinding;

    let strategy = match kernel {
        ProductKernel::SmallTiles => Strategy::SimpleUnit(Inferred(SimpleUnitSelectionArgs {
            tile_size: TileSizeSelection::MinTileSize,
        })),
        ProductKernel::DoubleBuffered => Strategy::DoubleUnit(Inferred(DoubleUnitSelectionArgs {
            tile_size: TileSizeSelection::MaxTileSize,
        })),
        ProductKernel::Gemm => Strategy::Gemm(Inferred(GemmStrategy {
            target_num_planes: None,
        })),
        ProductKernel::Tiled(tile) => return crate::tiled_product::kernel::launch(lhs, rhs, &out, tile),
    };
    let storage = dtype_to_storage_type(out.dtype);
    let mut dtypes = MatmulElems::from_globals(&MatmulGlobalElems {
        lhs: storage,
        rhs: storage,
        out: storage,
    });
    let client = out.client.clone();
    cubek::matmul::launch::launch_ref(
        &strategy.into(),
        &client,
        InputBinding::new(lhs.binding(), storage),
        InputBinding::new(rhs.binding(), storage),
        out.binding(),
        &mut dtypes,
    )
}

impl<B: ConvProductBackend, C: CheckpointStrategy> ConvProductBackend for Autodiff<B, C> {
    fn conv_product(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct ConvProduct;

        impl<B: ConvProductBackend> Backward<B, 2> for ConvProduct {
            /// Each operand is kept only if the other one needs its gradient.
            type State = (Option<NodeId>, Option<NodeId>, [usize; 2]);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let (lhs, rhs, [lhs_batch, rhs_batch]) = ops.state;
                let lhs = lhs.map(|node| checkpointer.retrieve_node_output::<FloatTensor<B>>(node));
                let rhs = rhs.map(|node| checkpointer.retrieve_node_output::<FloatTensor<B>>(node));
                let transposed =
                    |tensor: Option<FloatTensor<B>>| B::float_swap_dims(tensor.unwrap(), 1, 2);
                binary::<B, _, _>(
                    ops.parents,
                    ops.node,
                    grads,
                    |grad| unbroadcast::<B>(B::conv_product(grad, transposed(rhs)), lhs_batch),
                    |grad| unbroadcast::<B>(B::conv_product(transposed(lhs), grad), rhs_batch),
                );
            }
        }

        let batches = [lhs.primitive().shape()[0], rhs.primitive().shape()[0]];
        let (lhs_tracked, rhs_tracked) = (lhs.is_tracked(), rhs.is_tracked());
        match ConvProduct
            .prepare::<C>([lhs.node(), rhs.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let lhs_state = rhs_tracked.then(|| prep.checkpoint(&lhs));
                let rhs_state = lhs_tracked.then(|| prep.checkpoint(&rhs));
                let output = B::conv_product(lhs.primitive().clone(), rhs.primitive().clone());
                prep.finish((lhs_state, rhs_state, batches), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::conv_product(lhs.into_primitive(), rhs.into_primitive()))
            }
        }
    }
}

/// A gradient summed back to an operand's batch of one, where the product broadcast it.
fn unbroadcast<B: Backend>(grad: FloatTensor<B>, batch: usize) -> FloatTensor<B> {
    if batch == 1 && grad.shape()[0] > 1 {
        B::float_sum_dim(grad, 0)
    } else {
        grad
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn product_kernels_are_named_as_they_parse() {
        use crate::ProductTile;
        let settings = [
            ("cubek", ProductKernels::Cubek),
            ("tiled", ProductKernels::Tiled { vectorized: false }),
            ("tiled-v4", ProductKernels::Tiled { vectorized: true }),
            ("tiled-tall", ProductKernels::Fixed(ProductTile::TALL)),
            ("tiled-v4-tall", ProductKernels::Fixed(ProductTile::TALL.vectorized())),
            ("tiled-v4-small", ProductKernels::Fixed(ProductTile::SMALL.vectorized())),
        ];
        for (name, setting) in settings {
            assert_eq!(name.parse::<ProductKernels>(), Ok(setting), "{name}");
            assert_eq!(setting.name(), name, "{setting:?}");
        }
        for wrong in ["tiled-v8", "tiled-huge", "tiled-v4-", "tiledlarge", "cubek-tiled", ""] {
            let error = wrong.parse::<ProductKernels>().expect_err(wrong);
            assert!(error.contains("expected cubek, tiled or tiled-v4"), "{error}");
        }
    }

    #[test]
    fn long_and_narrow_products_take_gemm_where_there_are_subgroups() {
        use ProductKernel::{DoubleBuffered, Gemm, SmallTiles};
        // (batch, rows, inner, columns, subgroups), the kernel.
        let cases = [
            // Batch 1's layer 4: 512 outputs × 49 positions over 2048 inputs.
            ((1, 512, 2048, 49, true), Gemm),
            ((1, 256, 1024, 196, true), Gemm),
            ((1, 512, 2048, 49, false), DoubleBuffered),
            // The same at micro-batch 10 (501 760 outputs), and at 50, beyond 2^20 outputs.
            ((10, 256, 1024, 196, true), Gemm),
            ((10, 256, 1024, 196, false), SmallTiles),
            ((50, 256, 1024, 196, true), SmallTiles),
            // The bounds: 2^20 outputs (for the double-buffered kernel too), an inner dimension of
            // 1024.
            ((1, 1024, 1024, 1024, true), Gemm),
            ((1, 1024, 1024, 1025, true), SmallTiles),
            ((1, 1024, 1023, 1024, true), DoubleBuffered),
            // A short inner dimension.
            ((1, 2048, 512, 49, true), DoubleBuffered),
            ((2, 2048, 512, 49, true), SmallTiles),
            // One product over a batch of 50 (channels-last): layer 1's 50 · 3136 positions.
            ((1, 156_800, 576, 64, true), SmallTiles),
            ((1, 1024, 512, 1024, false), DoubleBuffered),
        ];
        for (shape, kernel) in cases {
            let (batch, rows, inner, columns, subgroups) = shape;
            assert_eq!(
                ProductKernel::for_shape(batch, rows, inner, columns, subgroups),
                kernel,
                "{shape:?}"
            );
        }
    }
}
