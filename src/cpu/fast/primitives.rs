//! One convolution of the fast engine on its own, in the engine's layouts, for benchmarks
//! (`cargo bench --bench train` reports each kernel's multiply-accumulates per second against
//! the reference loops): the inputs are prepared once, each call runs one kernel over every
//! image.

use super::conv::{
    bucket_weight_gradient, direct_conv_image, direct_weights, groups8, lut_conv_image,
    padded_pixels, GradOut, InPlane, Lut, OutImage, Taps, PAD,
};
use crate::cpu::ConvShape;
use rayon::prelude::*;

/// A spiking convolution (its input read from spike planes) with random spikes, weights and
/// output gradient.
pub struct SpikeConv {
    pub shape: ConvShape,
    planes: Vec<u8>,
    weights: Vec<f32>,
    grad: Vec<f32>,
    grad_pixels: Vec<u32>,
    out: Vec<f32>,
    gw: Vec<f32>,
    gx: Vec<f32>,
}

impl SpikeConv {
    /// Spikes at `rate`, weights and gradients uniform in [-1, 1), from `seed`.
    pub fn new(shape: ConvShape, rate: f64, seed: u64) -> SpikeConv {
        use rand::{Rng, SeedableRng};
        let s = shape;
        assert!(s.stride == 1 && !s.shift, "SpikeConv: stride 1, no shift");
        let mut r = rand::rngs::StdRng::seed_from_u64(seed);
        let (g8, wp) = (groups8(s.cin), s.w + 2 * PAD);
        let plane = (s.h + 2 * PAD) * wp * g8;
        let mut planes = vec![0u8; s.n * plane];
        for img in 0..s.n {
            for y in 0..s.h {
                for x in 0..s.w {
                    for ch in 0..s.cin {
                        if r.random::<f64>() < rate {
                            planes[img * plane + ((y + PAD) * wp + x + PAD) * g8 + ch / 8] |=
                                1 << (ch % 8);
                        }
                    }
                }
            }
        }
        let weights = (0..s.weight_len())
            .map(|_| r.random::<f32>() * 2.0 - 1.0)
            .collect();
        let (ho, wo) = (s.out_h(), s.out_w());
        let gplane = (ho + 2 * PAD) * (wo + 2 * PAD) * s.cout;
        let grad_pixels = padded_pixels(ho, wo);
        let mut grad = vec![0.0f32; s.n * gplane];
        for img in 0..s.n {
            for &p in &grad_pixels {
                for o in 0..s.cout {
                    grad[img * gplane + p as usize * s.cout + o] = r.random::<f32>() * 2.0 - 1.0;
                }
            }
        }
        SpikeConv {
            shape,
            planes,
            weights,
            grad,
            grad_pixels,
            out: vec![0.0; s.n * ho * wo * s.cout],
            gw: vec![0.0; s.weight_len()],
            gx: vec![0.0; s.n * s.h * s.w * s.cin],
        }
    }

    /// Multiply-accumulates of one kernel call (as a dense convolution counts them).
    pub fn macs(&self) -> usize {
        self.shape.macs_per_image() * self.shape.n
    }

    /// The forward convolution (lookup tables built from the weights, then every image).
    pub fn forward(&mut self) -> &[f32] {
        let s = &self.shape;
        let lut = Lut::build(&self.weights, s, Vec::new());
        let taps = Taps::forward(s);
        let g8 = groups8(s.cin);
        let plane = self.planes.len() / s.n;
        let o = OutImage {
            stride: s.cout,
            offset: 0,
            channels: s.cout,
        };
        let img_out = s.out_h() * s.out_w() * s.cout;
        let planes = &self.planes;
        self.out
            .par_chunks_mut(img_out)
            .enumerate()
            .for_each(|(img, out)| {
                lut_conv_image(
                    &planes[img * plane..(img + 1) * plane],
                    g8,
                    &lut,
                    &taps,
                    out,
                    o,
                )
            });
        &self.out
    }

    fn grad_out(&self) -> GradOut<'_> {
        let s = &self.shape;
        GradOut {
            data: &self.grad,
            image_len: self.grad.len() / s.n,
            pixels: &self.grad_pixels,
            stride: s.cout,
            offset: 0,
        }
    }

    /// The weight gradient (buckets).
    pub fn weight_gradient(&mut self) -> &[f32] {
        let taps = Taps::forward(&self.shape);
        let mut gw = std::mem::take(&mut self.gw);
        bucket_weight_gradient(&self.planes, &self.shape, &taps, self.grad_out(), &mut gw);
        self.gw = gw;
        &self.gw
    }

    /// The input gradient (the flipped kernel over the padded output gradient).
    pub fn input_gradient(&mut self) -> &[f32] {
        let s = self.shape;
        let bt = Taps::input_gradient(&s);
        let (wt, cinp) = direct_weights(&self.weights, &s, true);
        let mut gx = std::mem::take(&mut self.gx);
        let g = self.grad_out();
        let in_img = s.h * s.w * s.cin;
        let o = OutImage {
            stride: s.cin,
            offset: 0,
            channels: s.cin,
        };
        gx.par_chunks_mut(in_img)
            .enumerate()
            .for_each(|(img, gx_n)| {
                let plane = InPlane {
                    data: &g.data[img * g.image_len..(img + 1) * g.image_len],
                    stride: s.cout,
                    offset: 0,
                    channels: s.cout,
                };
                direct_conv_image(plane, &wt, cinp, &bt, gx_n, o);
            });
        self.gx = gx;
        &self.gx
    }
}
