use crate::gpu::{Dispatch, Gpu, PendingRead, Tensor};
use crate::kernels::images::ByteImages;
use crate::kernels::{channel, distance};
use crate::nets::{ForwardPlan, Network};
use crate::{bail, Result};

use super::{ChannelWeights, Method, Part};

/// A DPS metric: a loss network, a comparison method and its per-channel weights, on the GPU.
pub struct Metric {
    pub net: Network,
    pub method: Method,
    pub weights: ChannelWeights,
    pub size: usize,
    /// (channels, side) per tap.
    pub taps: Vec<(usize, usize)>,
    /// Every channel weight, part-major then tap, as the profile's columns are laid out.
    pub all_weights: Tensor,
    plan: Option<GroupPlan>,
    max_groups_per_chunk: Option<usize>,
    keeps_gradients: bool,
}

/// Distances of every compared image to its group's reference: `d[m][g]` for member m+1 of group g.
pub type GroupDistances = Vec<Vec<f32>>;

/// Distances queued on the GPU ([`Metric::queue_group_distances_of_bytes`]).
pub struct PendingDistances {
    read: PendingRead,
    compared: usize,
    n_groups: usize,
}

impl PendingDistances {
    /// Waits for the distances; a non-finite one is an error.
    pub fn wait(self, gpu: &Gpu) -> Result<GroupDistances> {
        let d = gpu.finish_read(self.read)?;
        let n = self.n_groups;
        let out: GroupDistances = (0..self.compared).map(|m| d[m * n..(m + 1) * n].to_vec()).collect();
        if let Some((m, g)) = out
            .iter()
            .enumerate()
            .find_map(|(m, r)| r.iter().position(|v| !v.is_finite()).map(|g| (m, g)))
        {
            bail!("the distance of image {} of group {g} came out non-finite", m + 1);
        }
        Ok(out)
    }
}

/// The images of groups, member by member (`[m]` holds image m of every group, [3, size, size] each,
/// concatenated): [0, 1] floats, or the 8-bit values images are decoded as, which upload a quarter of the bytes.
#[derive(Clone, Copy)]
pub enum GroupImages<'a> {
    Unit(&'a [&'a [f32]]),
    Bytes(&'a [&'a [u8]]),
}

impl GroupImages<'_> {
    fn members(&self) -> usize {
        match self {
            GroupImages::Unit(m) => m.len(),
            GroupImages::Bytes(m) => m.len(),
        }
    }

    /// Values member `m` holds.
    fn len(&self, m: usize) -> usize {
        match self {
            GroupImages::Unit(members) => members[m].len(),
            GroupImages::Bytes(members) => members[m].len(),
        }
    }

    /// The first non-finite value of member `m` (bytes have none).
    fn non_finite(&self, m: usize) -> Option<usize> {
        match self {
            GroupImages::Unit(members) => members[m].iter().position(|v| !v.is_finite()),
            GroupImages::Bytes(_) => None,
        }
    }
}

impl Metric {
    pub fn new(gpu: &Gpu, net: Network, method: Method, weights: ChannelWeights, size: usize) -> Result<Metric> {
        let taps = net.kind.tap_shapes(size)?;
        if weights.vectors.len() != method.parts().len() {
            bail!(
                "{} weight sets given for the {} method, which has {} parts",
                weights.vectors.len(),
                method.name(),
                method.parts().len()
            );
        }
        let mut all = Vec::new();
        for vectors in &weights.vectors {
            if vectors.len() != taps.len() {
                bail!(
                    "{} weight vectors for {} taps of {}",
                    vectors.len(),
                    taps.len(),
                    net.kind.name()
                );
            }
            for (l, (v, &(c, _))) in vectors.iter().zip(&taps).enumerate() {
                if v.len() != c {
                    bail!(
                        "{} weights for tap {l} of {}, which has {c} channels",
                        v.len(),
                        net.kind.name()
                    );
                }
                all.extend_from_slice(v);
            }
        }
        check_method(method, &taps)?;
        let all_weights = gpu.upload("channel weights", &[all.len()], &all)?;
        Ok(Metric {
            net,
            method,
            weights,
            size,
            taps,
            all_weights,
            plan: None,
            max_groups_per_chunk: None,
            keeps_gradients: false,
        })
    }

    /// Columns of the pair profile: the channels of every tap, once per part of the method.
    pub fn columns(&self) -> usize {
        self.method.parts().len() * self.taps.iter().map(|t| t.0).sum::<usize>()
    }

    /// Caps the groups per chunk below what the adapter allows (smaller GPU memory footprint; tests use it
    /// to exercise chunking on small batches).
    pub fn set_max_groups_per_chunk(&mut self, groups: Option<usize>) {
        self.max_groups_per_chunk = groups.map(|g| g.max(1));
    }

    /// Sizes chunks for a network that trains (a gradient is kept beside every activation), and has its plans'
    /// forward record what the network's backward reads.
    pub fn set_keeps_gradients(&mut self, keeps: bool) {
        self.keeps_gradients = keeps;
    }

    /// Whether `groups` groups of `group_len` images fit the chunk budget all at once.
    pub fn fits_budget(&self, gpu: &Gpu, group_len: usize, groups: usize) -> Result<bool> {
        fits_budget(gpu, &self.net, self.size, group_len, self.keeps_gradients, groups)
    }

    /// How many groups of `group_len` images one chunk may hold on this adapter.
    pub fn groups_per_chunk(&self, gpu: &Gpu, group_len: usize) -> Result<usize> {
        groups_per_chunk(
            gpu,
            &self.net,
            self.size,
            group_len,
            self.keeps_gradients,
            self.max_groups_per_chunk,
        )
    }

    /// Distances within groups of images. `members[m]` holds image m of every group, `n_groups` images of
    /// [3, size, size] in [0, 1], concatenated; member 0 is the reference. With `raw_reference` the reference
    /// images skip ImageNet normalisation (the paper's code path). Work is split into chunks that fit the
    /// adapter's binding limit.
    pub fn group_distances(&mut self, gpu: &Gpu, members: &[&[f32]], raw_reference: bool) -> Result<GroupDistances> {
        self.distances_of(gpu, GroupImages::Unit(members), raw_reference)?
            .wait(gpu)
    }

    /// [`Metric::group_distances`] of 8-bit images (value v stands for v / 255), as they are decoded.
    pub fn group_distances_of_bytes(
        &mut self,
        gpu: &Gpu,
        members: &[&[u8]],
        raw_reference: bool,
    ) -> Result<GroupDistances> {
        self.distances_of(gpu, GroupImages::Bytes(members), raw_reference)?
            .wait(gpu)
    }

    /// [`Metric::group_distances_of_bytes`] without waiting: every chunk is queued on the GPU and the distances
    /// come from [`PendingDistances::wait`], so the host can prepare and queue the next batch while this one runs.
    pub fn queue_group_distances_of_bytes(
        &mut self,
        gpu: &Gpu,
        members: &[&[u8]],
        raw_reference: bool,
    ) -> Result<PendingDistances> {
        self.distances_of(gpu, GroupImages::Bytes(members), raw_reference)
    }

    // No chunk waits for the one before: each chunk's distances are copied into one buffer on the GPU, read back
    // once at the end, so uploading a chunk's images overlaps the GPU's work on the chunk before.
    fn distances_of(&mut self, gpu: &Gpu, members: GroupImages, raw_reference: bool) -> Result<PendingDistances> {
        let group_len = members.members();
        if group_len < 2 {
            bail!("a group needs a reference and at least one image to compare");
        }
        let image_len = 3 * self.size * self.size;
        let n_groups = members.len(0) / image_len;
        for m in 0..group_len {
            if members.len(m) != n_groups * image_len {
                bail!(
                    "member {m} holds {} values; expected {n_groups} images of 3×{}×{}",
                    members.len(m),
                    self.size,
                    self.size
                );
            }
            if let Some(i) = members.non_finite(m) {
                bail!("image {} of member {m} has a non-finite value", i / image_len);
            }
        }
        let chunk = balanced_chunk(self.groups_per_chunk(gpu, group_len)?, n_groups);
        let size = self.size;
        let plan = self.prepare(gpu, chunk, group_len, raw_reference)?;
        let compared = group_len - 1;
        let all = gpu.zeros("distances of the batch", &[compared, n_groups.max(1)])?;
        let mut start = 0;
        while start < n_groups {
            let count = chunk.min(n_groups - start);
            run_chunk(
                gpu,
                plan,
                size,
                members,
                start,
                count,
                distance::dropout_state(0, start as u32, 0.0),
            )?;
            gpu.run(std::slice::from_ref(plan.sum()?))?;
            for m in 0..compared {
                gpu.copy(&plan.distances, m * chunk, &all, m * n_groups + start, count)?;
            }
            start += count;
        }
        Ok(PendingDistances {
            read: gpu.read_later(&all, compared * n_groups)?,
            compared,
            n_groups,
        })
    }

    /// The recorded plan for chunks of `chunk` groups of `group_len` images, built on first use.
    pub fn prepare(&mut self, gpu: &Gpu, chunk: usize, group_len: usize, raw_reference: bool) -> Result<&GroupPlan> {
        let key = (chunk, group_len, raw_reference);
        if self.plan.as_ref().map(|p| (p.key, p.trains)) != Some((key, self.keeps_gradients)) {
            self.plan = None; // free the old plan's buffers before allocating the new one
            self.plan = Some(GroupPlan::new(gpu, self, key)?);
        }
        Ok(self.plan.as_ref().expect("just built"))
    }

    /// The plan built by the last [`Metric::prepare`].
    pub fn current_plan(&self) -> Option<&GroupPlan> {
        self.plan.as_ref()
    }

    /// The distance between two images of [3, size, size] in [0, 1].
    pub fn distance(&mut self, gpu: &Gpu, a: &[f32], b: &[f32]) -> Result<f32> {
        Ok(self.group_distances(gpu, &[a, b], false)?[0][0])
    }
}

impl GroupPlan {
    /// Groups per chunk and images per group.
    pub fn chunk_shape(&self) -> (usize, usize) {
        (self.key.0, self.key.1)
    }
}

/// The recorded distance computation for one chunk size: the forward plan, then per method (one "head"
/// each), part and tap the transform, the unit normalisation and the pair profile (one column block of the
/// head's profile). A metric's plan has one head and the weighted sum of its profile with every channel weight
/// at once; a sweep's plan has one head per method, so one forward pass serves all of them.
pub struct GroupPlan {
    key: (usize, usize, bool),
    /// Whether the forward records what a backward through the network reads.
    trains: bool,
    pub forward: ForwardPlan,
    /// One [pairs, columns] profile per method: per pair, the mean squared difference of every (part, tap,
    /// channel).
    pub profiles: Vec<Tensor>,
    /// The first head's profile (the metric's).
    pub profile: Tensor,
    pub distances: Tensor,
    /// The [`distance::dropout_state`] of the chunk being run, shared by every head.
    pub state: wgpu::Buffer,
    /// Every head's dispatches, run after the forward pass.
    pub dispatches: Vec<Dispatch>,
    /// d = profile · w for the metric's weights (absent in a multi-method plan).
    pub sum: Option<Dispatch>,
    /// Scratch shared by every (part, tap): the transformed maps (means or sorted) and the inverse norms of the
    /// compared maps' columns, by which the pair profile normalises them.
    pub(crate) transformed: Tensor,
    _inverse_norms: Tensor,
    /// Uploads 8-bit images into the whole of `forward.input`.
    bytes: ByteImages,
}

impl GroupPlan {
    pub fn new(gpu: &Gpu, metric: &Metric, key: (usize, usize, bool)) -> Result<GroupPlan> {
        GroupPlan::build(
            gpu,
            &metric.net,
            metric.size,
            &[metric.method],
            key,
            Some(&metric.all_weights),
            metric.keeps_gradients,
        )
    }

    /// A plan over `net`'s features with one profile per method of `methods`, and the weighted sum with
    /// `weights` of the first one when given; `trains`: the network's backward will run on it.
    pub fn build(
        gpu: &Gpu,
        net: &Network,
        size: usize,
        methods: &[Method],
        key: (usize, usize, bool),
        weights: Option<&Tensor>,
        trains: bool,
    ) -> Result<GroupPlan> {
        let (chunk, group_len, raw_reference) = key;
        let taps = net.kind.tap_shapes(size)?;
        for &method in methods {
            check_method(method, &taps)?;
        }
        if methods.is_empty() {
            bail!("a plan needs at least one comparison method");
        }
        let n = chunk * group_len;
        let normalize = if raw_reference { chunk..n } else { 0..n };
        let forward = ForwardPlan::new(gpu, net, n, size, normalize, trains)?;
        let bytes = ByteImages::new(gpu, &forward.input, forward.input.numel())?;
        let largest = taps.iter().map(|&(c, s)| c * s * s).max().unwrap_or(1);
        let transformed = gpu.zeros("transformed taps", &[n * largest])?;
        let most_positions = taps.iter().map(|&(_, s)| s * s).max().unwrap_or(1);
        let inverse_norms = gpu.zeros("inverse norms of the taps", &[n * most_positions])?;
        let n_pairs = (group_len - 1) * chunk;
        let pair_list: Vec<u32> = (1..group_len)
            .flat_map(|m| (0..chunk).flat_map(move |g| [g as u32, (m * chunk + g) as u32]))
            .collect();
        let pairs = gpu.upload_pod("pairs", &pair_list)?;
        let state = gpu.upload_pod("dropout state", &distance::dropout_state(0, 0, 0.0))?;
        let channels: usize = taps.iter().map(|t| t.0).sum();
        let distances = gpu.zeros("distances", &[n_pairs])?;
        let mut dispatches = Vec::new();
        let mut profiles = Vec::new();
        for &method in methods {
            let profile = gpu.zeros("pair profile", &[n_pairs, method.parts().len() * channels])?;
            let mut offset = 0;
            // The scratch maps are reused head after head: dispatches run in order.
            for part in method.parts() {
                for (tap, &(c, side)) in forward.taps.iter().zip(&taps) {
                    let hw = side * side;
                    let compared = match part {
                        Part::Spatial => tap.view(&[n, c, hw])?,
                        Part::Mean => {
                            let means = transformed.view(&[n, c, 1])?;
                            dispatches.push(channel::channel_mean(gpu, &tap.view(&[n, c, hw])?, &means)?);
                            means
                        }
                        Part::Sort => {
                            let sorted = transformed.view(&[n, c, hw])?;
                            dispatches.push(channel::channel_sort(gpu, &tap.view(&[n, c, hw])?, &sorted)?);
                            sorted
                        }
                    };
                    dispatches.push(channel::inverse_norm(gpu, &compared, &inverse_norms)?);
                    dispatches.push(distance::pair_profile(
                        gpu,
                        &compared,
                        &inverse_norms,
                        &pairs,
                        n_pairs,
                        chunk,
                        &state,
                        &profile,
                        offset,
                        0,
                    )?);
                    offset += c;
                }
            }
            profiles.push(profile);
        }
        let profile = profiles[0].view(&profiles[0].shape)?;
        let sum = match weights {
            Some(w) => Some(distance::weighted_sum(gpu, &profile, w, &distances)?),
            None => None,
        };
        Ok(GroupPlan {
            key,
            trains,
            forward,
            profiles,
            profile,
            distances,
            state,
            dispatches,
            sum,
            transformed,
            _inverse_norms: inverse_norms,
            bytes,
        })
    }

    /// The weighted sum of the metric's plan.
    pub fn sum(&self) -> Result<&Dispatch> {
        match &self.sum {
            Some(s) => Ok(s),
            None => bail!("this plan serves several methods and has no single weighted sum"),
        }
    }
}

/// Refuses a method the taps cannot serve (the sort kernel's capacity).
pub fn check_method(method: Method, taps: &[(usize, usize)]) -> Result<()> {
    if method.parts().contains(&Part::Sort) {
        if let Some((l, &(_, side))) = taps
            .iter()
            .enumerate()
            .find(|(_, t)| t.1 * t.1 > channel::SORT_CAPACITY)
        {
            bail!(
                "the sort method supports at most {} positions per map; tap {l} has {side}×{side} (use a smaller --size)",
                channel::SORT_CAPACITY
            );
        }
    }
    Ok(())
}

/// How many groups of `group_len` images of `size`×`size` one chunk of `net` may hold on this adapter (at most
/// `max`): its largest map must fit one binding, and all its maps [`Gpu::chunk_budget`] — twice over
/// `with_gradients` (a network that trains keeps a gradient beside every map).
pub fn groups_per_chunk(
    gpu: &Gpu,
    net: &Network,
    size: usize,
    group_len: usize,
    with_gradients: bool,
    max: Option<usize>,
) -> Result<usize> {
    let (largest, total) = group_bytes(net, size, group_len, with_gradients)?;
    let by_binding = gpu.max_binding_bytes() / largest.max(1);
    let by_budget = gpu.chunk_budget / total.max(1);
    let groups = (by_binding.min(by_budget) as usize).min(max.unwrap_or(usize::MAX));
    if groups == 0 {
        bail!(
            "one group of {group_len} {size}×{size} images does not fit this adapter's buffers; use a smaller --size"
        );
    }
    Ok(groups)
}

/// Whether `groups` groups, in as many chunks as it takes, fit [`Gpu::chunk_budget`] all at once (with their
/// gradients when `with_gradients`).
pub fn fits_budget(
    gpu: &Gpu,
    net: &Network,
    size: usize,
    group_len: usize,
    with_gradients: bool,
    groups: usize,
) -> Result<bool> {
    let (_, total) = group_bytes(net, size, group_len, with_gradients)?;
    Ok(total.saturating_mul(groups as u64) <= gpu.chunk_budget)
}

/// Bytes of one group's largest map, and of all its maps and scratch (twice over `with_gradients`).
fn group_bytes(net: &Network, size: usize, group_len: usize, with_gradients: bool) -> Result<(u64, u64)> {
    let (total, largest) = ForwardPlan::bytes_per_image(net, size)?;
    let copies = if with_gradients { 2 } else { 1 };
    Ok((
        largest * group_len as u64,
        copies * (total + 2 * largest) * group_len as u64,
    ))
}

/// The chunk for `n` groups when a chunk may hold `max`: as few chunks as `max` allows, all of one size, so
/// the last chunk is padded by less than one group per chunk (a plan always runs whole chunks).
pub fn balanced_chunk(max: usize, n: usize) -> usize {
    let n = n.max(1);
    n.div_ceil(n.div_ceil(max.max(1)))
}

/// Runs `plan`'s forward pass and pair profile on groups `start..start + count` of `members` with the dropout
/// `state`; a short last chunk is padded with black images.
pub fn run_chunk(
    gpu: &Gpu,
    plan: &GroupPlan,
    size: usize,
    members: GroupImages,
    start: usize,
    count: usize,
    state: [u32; 4],
) -> Result<()> {
    let (chunk, group_len, _) = plan.key;
    let image_len = 3 * size * size;
    if members.members() != group_len || count > chunk {
        bail!(
            "{count} groups of {} images do not fit a plan for {chunk} groups of {group_len}",
            members.members()
        );
    }
    let (range, pad) = (
        start * image_len..(start + count) * image_len,
        (chunk - count) * image_len,
    );
    // Stale images of an earlier chunk in the padding would only cost time, but zeros keep runs reproducible.
    match members {
        GroupImages::Unit(members) => {
            for (m, images) in members.iter().enumerate() {
                gpu.write(&plan.forward.input, m * chunk * image_len, &images[range.clone()])?;
                if pad > 0 {
                    gpu.write(&plan.forward.input, (m * chunk + count) * image_len, &vec![0.0; pad])?;
                }
            }
        }
        GroupImages::Bytes(members) => {
            let zeros = vec![0u8; pad];
            let parts: Vec<&[u8]> = members
                .iter()
                .flat_map(|images| [&images[range.clone()], &zeros[..]])
                .collect();
            plan.bytes.write_parts(gpu, &parts)?;
        }
    }
    gpu.write_pod(&plan.state, &state)?;
    plan.forward.run(gpu)?;
    gpu.run(&plan.dispatches)
}

#[cfg(test)]
mod tests {
    use super::balanced_chunk;

    #[test]
    fn balanced_chunks_are_as_few_as_the_limit_allows_and_pad_less_than_one_group_each() {
        for max in 1..40 {
            for n in 1..200 {
                let chunk = balanced_chunk(max, n);
                let chunks = n.div_ceil(chunk);
                assert!(chunk <= max, "max {max} n {n}: chunk {chunk}");
                assert_eq!(chunks, n.div_ceil(max), "max {max} n {n}: {chunks} chunks of {chunk}");
                assert!(
                    chunks * chunk - n < chunks,
                    "max {max} n {n}: chunk {chunk} pads too much"
                );
            }
        }
        assert_eq!(balanced_chunk(990, 1024), 512);
        assert_eq!(balanced_chunk(8, 0), 1);
    }
}
