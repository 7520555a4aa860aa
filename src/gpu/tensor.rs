/// An f32 tensor living in a GPU storage buffer, row-major with the given shape.
pub struct Tensor {
    pub buffer: wgpu::Buffer,
    pub shape: Vec<usize>,
}

impl Tensor {
    pub(super) fn new(buffer: wgpu::Buffer, shape: &[usize]) -> Tensor {
        Tensor {
            buffer,
            shape: shape.to_vec(),
        }
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Values per leading index (per image for an NCHW map).
    pub fn per_item(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// The same buffer seen with another shape of at most as many values (buffers are reference counted).
    pub fn view(&self, shape: &[usize]) -> crate::Result<Tensor> {
        let numel: usize = shape.iter().product();
        if numel > self.numel() {
            crate::bail!(
                "a view of shape {shape:?} does not fit a tensor of shape {:?}",
                self.shape
            );
        }
        Ok(Tensor {
            buffer: self.buffer.clone(),
            shape: shape.to_vec(),
        })
    }

    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        self.buffer.as_entire_binding()
    }
}
