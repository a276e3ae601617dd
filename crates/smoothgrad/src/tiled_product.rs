//! A matrix product kernel of our own for burn's GPU backend: the classic register-blocked
//! product (each thread keeps a `thread_rows × thread_columns` block of the output in registers,
//! the cube stages `depth`-deep slices of both operands in shared memory, and the next slice is
//! read from global memory while the current one is multiplied).
//!
//! Why: on an H200, cubek's unit kernels in WGSL ran ResNet-50's products at about 12 TFLOP/s,
//! 80 % of a SmoothGrad pass at micro-batch 50, and no choice among cubek's strategies closed the
//! gap to PyTorch (`docs/benchmarks/h200-2026-11-29.json`). Opt-in until a GPU measures it
//! ([`crate::product::ProductKernels::Tiled`]).
//!
//! Operands are read through their strides, so transposed views (the weights of the input
//! gradient, the backward's `swap_dims`) need no copy; a batch of one is broadcast.
//!
//! A tile's `vector` (1 or 4) is how many neighbouring rows (columns) of the output a thread takes
//! at a time and reads from shared memory in one load: with 4, an 8 × 8 thread block issues 4 shared
//! load instructions per 64 multiply-adds instead of 16 (the bytes read stay the same), which would
//! otherwise keep the shared-memory pipe about as busy as the arithmetic.

/// The block of the output one cube computes and how it is split among its threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProductTile {
    /// Output rows per cube.
    pub rows: usize,
    /// Output columns per cube.
    pub columns: usize,
    /// Inner-dimension slice staged in shared memory per step.
    pub depth: usize,
    /// Output rows per thread.
    pub thread_rows: usize,
    /// Output columns per thread.
    pub thread_columns: usize,
    /// Neighbouring outputs a thread takes at a time in each direction, read from shared memory
    /// as one vector: 1 or 4.
    pub vector: usize,
}

impl ProductTile {
    /// 128 × 128 per cube, 8 × 8 per thread (256 threads): the usual shape of a fast f32 product
    /// on NVIDIA GPUs, for products with many rows and columns.
    pub const LARGE: Self = Self { rows: 128, columns: 128, depth: 8, thread_rows: 8, thread_columns: 8, vector: 1 };
    /// 128 × 64 per cube, 8 × 4 per thread (256 threads): for 64 columns (layer 1's output
    /// channels, channels-last).
    pub const TALL: Self = Self { rows: 128, columns: 64, depth: 8, thread_rows: 8, thread_columns: 4, vector: 1 };
    /// 64 × 128 per cube, 4 × 8 per thread (256 threads): for 64 rows (layer 1's output channels,
    /// channels-first).
    pub const WIDE: Self = Self { rows: 64, columns: 128, depth: 8, thread_rows: 4, thread_columns: 8, vector: 1 };
    /// 64 × 64 per cube, 4 × 4 per thread (256 threads), for products too narrow or too few for
    /// the others to fill the GPU.
    pub const SMALL: Self = Self { rows: 64, columns: 64, depth: 16, thread_rows: 4, thread_columns: 4, vector: 1 };

    /// The same block with shared slices read 4 elements at a time: slices deep enough (16 for
    /// the 64-wide tiles) that each thread loads whole vectors of both.
    pub fn vectorized(self) -> Self {
        let depth = self.depth.max(4 * self.threads() / self.rows.min(self.columns));
        Self { vector: 4, depth, ..self }
    }

    /// Threads per cube.
    fn threads(self) -> usize {
        (self.rows / self.thread_rows) * (self.columns / self.thread_columns)
    }

    /// Whether the threads split the outputs and both slices' vector loads evenly (else part of a
    /// slice would go unloaded), within a cube's 256 threads (WebGPU's least maximum).
    // Only the GPU kernel (and the tests) ask.
    #[cfg_attr(not(feature = "wgpu"), allow(dead_code))]
    fn is_whole(self) -> bool {
        let (threads, vector) = (self.threads(), self.vector);
        matches!(vector, 1 | 4)
            && self.rows % self.thread_rows == 0
            && self.columns % self.thread_columns == 0
            && self.thread_rows % vector == 0
            && self.thread_columns % vector == 0
            && threads <= 256
            && (self.rows * self.depth / vector) % threads == 0
            && (self.columns * self.depth / vector) % threads == 0
    }

    /// The tile for `batch` products of `rows × columns` outputs: the largest of [`Self::LARGE`],
    /// [`Self::TALL`] and [`Self::WIDE`] that the outputs fill with little padding (at most 15 %)
    /// in cubes enough for a large GPU (two per multiprocessor on an H100's 132), else
    /// [`Self::SMALL`]. A first guess, to be ranked on a GPU (`bench products`).
    pub fn for_shape(batch: usize, rows: usize, columns: usize) -> Self {
        let cubes = |tile: Self| batch * rows.div_ceil(tile.rows) * columns.div_ceil(tile.columns);
        let padding = |tile: Self| {
            let padded = rows.next_multiple_of(tile.rows) * columns.next_multiple_of(tile.columns);
            padded as f64 / (rows * columns) as f64
        };
        [Self::LARGE, Self::TALL, Self::WIDE]
            .into_iter()
            .find(|&tile| cubes(tile) >= 264 && padding(tile) <= 1.15)
            .unwrap_or(Self::SMALL)
    }
}

#[cfg(feature = "wgpu")]
pub(crate) mod kernel {
    use super::ProductTile;
    use burn::backend::cubecl::dtype_to_storage_type;
    use burn_cubecl::cubecl;
    use burn_cubecl::cubecl::prelude::*;
    use burn_cubecl::kernel::into_contiguous;
    use burn_cubecl::tensor::CubeTensor;
    use cubek::matmul::definition::{MatmulAvailabilityError, MatmulSetupError};

    /// `out = lhs · rhs` for `lhs [batch or 1, rows, inner]`, `rhs [batch or 1, inner, columns]` and a
    /// contiguous `out [batch, rows, columns]`, with `tile`; declined where the device cannot
    /// launch that many cubes (WebGPU: 65 535 a dimension), for cubek's kernel to run it instead.
    pub fn launch(lhs: CubeTensor, rhs: CubeTensor, out: &CubeTensor, tile: ProductTile) -> Result<(), MatmulSetupError> {
        assert!(tile.is_whole(), "{tile:?} does not split evenly among its threads");
        debug_assert!(out.is_contiguous(), "the product writes a contiguous output");
        let [batch, rows, columns] = out.meta.shape().dims::<3>();
        let cubes = [columns.div_ceil(tile.columns), rows.div_ceil(tile.rows), batch];
        let max = &out.client.properties().hardware.max_cube_count;
        let cube_count = CubeCount::new_3d(cubes[0] as u32, cubes[1] as u32, cubes[2] as u32);
        if cubes[0] > max.0 as usize || cubes[1] > max.1 as usize || cubes[2] > max.2 as usize {
            return Err(MatmulSetupError::Unavailable(MatmulAvailabilityError::CubeCountTooBig(cube_count)));
        }
        let lhs = with_a_unit_stride(lhs);
        let rhs = with_a_unit_stride(rhs);
        let lhs_inner_fastest = lhs.meta.strides()[2] == 1;
        let rhs_columns_fastest = rhs.meta.strides()[2] == 1;
        let client = out.client.clone();
        // Unchecked, as cubek launches its products: every read and write is bounded by hand, and the
        // checked mode's loop bounding would count the inner-dimension loop too.
        // SAFETY: the kernel reads only within `lhs`, `rhs` (indices below their shapes' bounds) and
        // writes only within `out`.
        unsafe { tiled_product_kernel::launch_unchecked(
            &client,
            cube_count,
            CubeDim::new_1d(tile.threads() as u32),
            tile.vector,
            lhs.into_tensor_arg(),
            rhs.into_tensor_arg(),
            out.clone().into_tensor_arg(),
            tile.rows,
            tile.columns,
            tile.depth,
            tile.thread_rows,
            tile.thread_columns,
            lhs_inner_fastest,
            rhs_columns_fastest,
            dtype_to_storage_type(out.dtype),
        ) };
        Ok(())
    }

    /// The operand itself where one of its matrix dimensions is contiguous (as in every product a
    /// convolution lowers to, transposed or not), else a contiguous copy: the kernel reads along one.
    fn with_a_unit_stride(tensor: CubeTensor) -> CubeTensor {
        let strides = tensor.meta.strides();
        if strides[2] == 1 || strides[1] == 1 {
            tensor
        } else {
            into_contiguous(tensor)
        }
    }

    /// How a cube's threads share the loads of one operand's slice: `loads` vectors each (of
    /// `vector` elements neighbouring along the operand's other dimension), the `index`-th
    /// (`unit + load · threads`) at `(k, group)` along the inner dimension (`depth` of it) and the
    /// other one (`groups` vectors of it), in the order of the operand's contiguous dimension
    /// (`inner_fastest` or not) so that neighbouring threads read neighbouring addresses. Shared
    /// memory keeps it `[depth][stride]` vectors.
    #[derive(Clone, Copy)]
    struct SliceLayout {
        loads: usize,
        threads: usize,
        inner_fastest: bool,
        depth: usize,
        groups: usize,
        stride: usize,
    }

    impl SliceLayout {
        fn new(width: usize, depth: usize, threads: usize, inner_fastest: bool, vector: usize) -> Self {
            let groups = width / vector;
            // Read along the inner dimension, neighbouring threads store neighbouring rows, which
            // (a multiple of 32 words apart) would all fall in the same banks: scalars, a warp's
            // 32 threads in `depth` rows, need 32 / depth words of padding a row to reach every
            // bank once; vectors, stored 8 threads at a time in 8 rows, an odd stride in vectors.
            let padding = if !inner_fastest { 0 } else if vector == 1 { 32 / depth } else { 1 };
            Self { loads: groups * depth / threads, threads, inner_fastest, depth, groups, stride: groups + padding }
        }
    }

    /// Where an operand's slices are read: element `(k, other)` at
    /// `start + other · other_stride + k · inner_stride`, zero from `others` on.
    #[derive(CubeType)]
    struct OperandSlices {
        start: usize,
        other_stride: usize,
        inner_stride: usize,
        first_other: usize,
        others: usize,
    }

    /// The slices of `operand` (`[batch or 1, …]`) for `batch`: its dimension `other` (1 or 2) is
    /// the one that is not the inner one, this cube's from `first_other` on, below `others`.
    #[cube]
    fn operand_slices<E: Numeric>(
        operand: &Tensor<E>,
        batch: usize,
        #[comptime] other: usize,
        first_other: usize,
        others: usize,
    ) -> OperandSlices {
        OperandSlices {
            start: if operand.shape(0) == 1 { 0usize.runtime() } else { batch * operand.stride(0) },
            other_stride: operand.stride(other),
            inner_stride: operand.stride(3 - other),
            first_other,
            others,
        }
    }

    #[cube]
    fn slice_position(load: usize, #[comptime] layout: SliceLayout) -> (usize, usize) {
        let index = UNIT_POS as usize + load * layout.threads;
        if layout.inner_fastest {
            (index % layout.depth, index / layout.depth)
        } else {
            (index / layout.groups, index % layout.groups)
        }
    }

    /// This thread's share of the slice from `first_inner` on (of `inner`), into registers.
    #[cube]
    fn read_slice<E: Numeric, N: Size>(
        operand: &Tensor<E>,
        from: &OperandSlices,
        next: &mut Array<Vector<E, N>>,
        first_inner: usize,
        inner: usize,
        #[comptime] layout: SliceLayout,
    ) {
        #[unroll]
        for load in 0..layout.loads {
            let (k, group) = slice_position(load, layout);
            let k = first_inner + k;
            let vector = N::value().comptime();
            let mut values = Vector::<E, N>::empty();
            #[unroll]
            for v in 0..vector {
                let other = from.first_other + group * vector + v;
                let mut value = E::from_int(0);
                if other < from.others && k < inner {
                    value = operand[from.start + other * from.other_stride + k * from.inner_stride];
                }
                values.insert(v, value);
            }
            next[load] = values;
        }
    }

    /// Stores what [`read_slice`] read into the shared slice, inner-major (`[depth][stride]`).
    #[cube]
    fn store_slice<E: Numeric, N: Size>(
        next: &Array<Vector<E, N>>,
        slice: &mut Shared<[Vector<E, N>]>,
        #[comptime] layout: SliceLayout,
    ) {
        #[unroll]
        for load in 0..layout.loads {
            let (k, group) = slice_position(load, layout);
            slice[k * layout.stride + group] = next[load];
        }
    }

    /// One thread block of `rows × columns` outputs per cube (`CUBE_POS_Y`, `CUBE_POS_X`; the batch
    /// in `CUBE_POS_Z`). A thread's outputs are `N` × `N` blocks strided by the thread grid (rows
    /// `(i · threads_down + ty) · N + v`, columns `(j · threads_across + tx) · N + w`): a warp then
    /// reads neighbouring vectors of the shared rhs slice (no bank conflicts) and writes
    /// neighbouring groups of output columns.
    #[cube(launch_unchecked)]
    #[allow(clippy::too_many_arguments)]
    fn tiled_product_kernel<E: Numeric, N: Size>(
        lhs: &Tensor<E>,
        rhs: &Tensor<E>,
        out: &mut Tensor<E>,
        #[comptime] rows: usize,
        #[comptime] columns: usize,
        #[comptime] depth: usize,
        #[comptime] thread_rows: usize,
        #[comptime] thread_columns: usize,
        #[comptime] lhs_inner_fastest: bool,
        #[comptime] rhs_columns_fastest: bool,
        #[define(E)] _dtype: ElemType,
    ) {
        let vector = N::value().comptime();
        let (row_groups, column_groups) = (thread_rows / vector, thread_columns / vector);
        let threads_across = columns / thread_columns;
        let threads_down = rows / thread_rows;
        let threads = threads_across * threads_down;
        let lhs_layout = comptime!(SliceLayout::new(rows, depth, threads, lhs_inner_fastest, vector));
        let rhs_layout = comptime!(SliceLayout::new(columns, depth, threads, !rhs_columns_fastest, vector));

        let (out_rows, out_columns, inner) = (out.shape(1), out.shape(2), lhs.shape(2));
        let batch = CUBE_POS_Z as usize;
        let first_row = CUBE_POS_Y as usize * rows;
        let first_column = CUBE_POS_X as usize * columns;
        let lhs_slices = operand_slices(lhs, batch, 1usize, first_row, out_rows);
        let rhs_slices = operand_slices(rhs, batch, 2usize, first_column, out_columns);
        let unit = UNIT_POS as usize;
        let tx = unit % threads_across;
        let ty = unit / threads_across;

        // Slices stored inner-major ([depth][stride] vectors, padded where read along the inner
        // dimension): the multiply reads a row of each.
        let mut lhs_slice = Shared::<[Vector<E, N>]>::new_slice(depth * lhs_layout.stride);
        let mut rhs_slice = Shared::<[Vector<E, N>]>::new_slice(depth * rhs_layout.stride);
        let mut lhs_next = Array::<Vector<E, N>>::new(lhs_layout.loads);
        let mut rhs_next = Array::<Vector<E, N>>::new(rhs_layout.loads);
        let mut sums = Array::<E>::new(thread_rows * thread_columns);
        let mut lhs_values = Array::<Vector<E, N>>::new(row_groups);
        let mut rhs_values = Array::<Vector<E, N>>::new(column_groups);
        #[unroll]
        for i in 0..thread_rows * thread_columns {
            sums[i] = E::from_int(0);
        }

        let steps = inner.div_ceil(depth);
        for step in 0..steps + 1 {
            // Read this step's slice into registers (the global loads then overlap the multiply of
            // the previous step's slice), multiply the previous one, then store this one.
            if step < steps {
                read_slice(lhs, &lhs_slices, &mut lhs_next, step * depth, inner, lhs_layout);
                read_slice(rhs, &rhs_slices, &mut rhs_next, step * depth, inner, rhs_layout);
            }
            if step > 0 {
                #[unroll]
                for k in 0..depth {
                    #[unroll]
                    for i in 0..row_groups {
                        lhs_values[i] = lhs_slice[k * lhs_layout.stride + i * threads_down + ty];
                    }
                    #[unroll]
                    for j in 0..column_groups {
                        rhs_values[j] = rhs_slice[k * rhs_layout.stride + j * threads_across + tx];
                    }
                    #[unroll]
                    for i in 0..thread_rows {
                        let lhs_value = lhs_values[i / vector].extract(i % vector);
                        #[unroll]
                        for j in 0..thread_columns {
                            sums[i * thread_columns + j] += lhs_value * rhs_values[j / vector].extract(j % vector);
                        }
                    }
                }
            }
            sync_cube();
            if step < steps {
                store_slice(&lhs_next, &mut lhs_slice, lhs_layout);
                store_slice(&rhs_next, &mut rhs_slice, rhs_layout);
            }
            sync_cube();
        }

        let (out_start, out_row_stride) = (batch * out.stride(0), out.stride(1));
        #[unroll]
        for i in 0..thread_rows {
            let row = first_row + ((i / vector) * threads_down + ty) * vector + i % vector;
            #[unroll]
            for j in 0..thread_columns {
                let column = first_column + ((j / vector) * threads_across + tx) * vector + j % vector;
                if row < out_rows && column < out_columns {
                    out[out_start + row * out_row_stride + column] = sums[i * thread_columns + j];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ProductTile;

    #[test]
    fn tiles_follow_the_outputs_shape() {
        // (batch, rows, columns), the tile.
        let cases = [
            // Channels-last at micro-batch 50: layer 2's 50 · 784 positions by 128 channels, layer
            // 1's 50 · 3136 by 64 (TALL); layer 4's 50 · 49 by 512 makes only 80 large cubes.
            ((1, 39_200, 128), ProductTile::LARGE),
            ((1, 156_800, 64), ProductTile::TALL),
            ((1, 2_450, 512), ProductTile::SMALL),
            // Channels-first at micro-batch 50: 256 by layer 2's 784 (14 % padding), 64 by layer
            // 1's 3136 (WIDE), 512 by layer 4's 49 (SMALL: 31 % padding even there).
            ((50, 256, 784), ProductTile::LARGE),
            ((50, 64, 3_136), ProductTile::WIDE),
            ((50, 512, 49), ProductTile::SMALL),
            // Batch 1: too few cubes for any but the small tile.
            ((1, 256, 3_136), ProductTile::SMALL),
        ];
        for ((batch, rows, columns), tile) in cases {
            assert_eq!(ProductTile::for_shape(batch, rows, columns), tile, "{batch} × {rows} × {columns}");
        }
    }

    #[test]
    fn vectorized_tiles_load_whole_vectors() {
        // 256 threads load a slice of `width × depth / 4` vectors: 64-wide tiles need 16 deep.
        let depths = [(ProductTile::LARGE, 8), (ProductTile::TALL, 16), (ProductTile::WIDE, 16), (ProductTile::SMALL, 16)];
        for (tile, depth) in depths {
            let vectorized = tile.vectorized();
            assert!(tile.is_whole() && vectorized.is_whole(), "{tile:?}");
            assert_eq!((vectorized.vector, vectorized.depth), (4, depth), "{tile:?}");
            assert_eq!(ProductTile { vector: 1, depth: tile.depth, ..vectorized }, tile, "only the vector and depth change");
        }
    }
}
