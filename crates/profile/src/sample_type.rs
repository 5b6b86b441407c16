//! The 19 sample types every profile carries, in the fixed order and with the
//! exact `type/unit` strings of the reference profiler (ddtrace 4.x), whatever
//! collectors are enabled (unused ones are 0).

/// One value slot of a pprof sample. The discriminant is the slot index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SampleType {
    /// `cpu-time/nanoseconds`
    CpuTime = 0,
    /// `cpu-samples/count`
    CpuSamples,
    /// `wall-time/nanoseconds`
    WallTime,
    /// `wall-samples/count`
    WallSamples,
    /// `exception-samples/count`
    ExceptionSamples,
    /// `lock-acquire-wait/nanoseconds`
    LockAcquireWait,
    /// `lock-acquire/count`
    LockAcquire,
    /// `lock-release-hold/nanoseconds`
    LockReleaseHold,
    /// `lock-release/count`
    LockRelease,
    /// `alloc-space/bytes`
    AllocSpace,
    /// `alloc-samples/count`
    AllocSamples,
    /// `heap-space/bytes`
    HeapSpace,
    /// `heap-live-samples/count`
    HeapLiveSamples,
    /// `gpu-time/nanoseconds`
    GpuTime,
    /// `gpu-samples/count`
    GpuSamples,
    /// `gpu-space/bytes`
    GpuSpace,
    /// `gpu-alloc-samples/count`
    GpuAllocSamples,
    /// `gpu-flops/count`
    GpuFlops,
    /// `gpu-flops-samples/count`
    GpuFlopsSamples,
}

/// Number of sample types.
pub const SAMPLE_TYPE_COUNT: usize = 19;

impl SampleType {
    /// All sample types, in pprof order.
    pub const ALL: [SampleType; SAMPLE_TYPE_COUNT] = [
        SampleType::CpuTime,
        SampleType::CpuSamples,
        SampleType::WallTime,
        SampleType::WallSamples,
        SampleType::ExceptionSamples,
        SampleType::LockAcquireWait,
        SampleType::LockAcquire,
        SampleType::LockReleaseHold,
        SampleType::LockRelease,
        SampleType::AllocSpace,
        SampleType::AllocSamples,
        SampleType::HeapSpace,
        SampleType::HeapLiveSamples,
        SampleType::GpuTime,
        SampleType::GpuSamples,
        SampleType::GpuSpace,
        SampleType::GpuAllocSamples,
        SampleType::GpuFlops,
        SampleType::GpuFlopsSamples,
    ];

    /// The pprof type string, e.g. `cpu-time`.
    pub fn name(self) -> &'static str {
        match self {
            SampleType::CpuTime => "cpu-time",
            SampleType::CpuSamples => "cpu-samples",
            SampleType::WallTime => "wall-time",
            SampleType::WallSamples => "wall-samples",
            SampleType::ExceptionSamples => "exception-samples",
            SampleType::LockAcquireWait => "lock-acquire-wait",
            SampleType::LockAcquire => "lock-acquire",
            SampleType::LockReleaseHold => "lock-release-hold",
            SampleType::LockRelease => "lock-release",
            SampleType::AllocSpace => "alloc-space",
            SampleType::AllocSamples => "alloc-samples",
            SampleType::HeapSpace => "heap-space",
            SampleType::HeapLiveSamples => "heap-live-samples",
            SampleType::GpuTime => "gpu-time",
            SampleType::GpuSamples => "gpu-samples",
            SampleType::GpuSpace => "gpu-space",
            SampleType::GpuAllocSamples => "gpu-alloc-samples",
            SampleType::GpuFlops => "gpu-flops",
            SampleType::GpuFlopsSamples => "gpu-flops-samples",
        }
    }

    /// The pprof unit string: `nanoseconds`, `count` or `bytes`.
    pub fn unit(self) -> &'static str {
        match self {
            SampleType::CpuTime
            | SampleType::WallTime
            | SampleType::LockAcquireWait
            | SampleType::LockReleaseHold
            | SampleType::GpuTime => "nanoseconds",
            SampleType::AllocSpace | SampleType::HeapSpace | SampleType::GpuSpace => "bytes",
            SampleType::CpuSamples
            | SampleType::WallSamples
            | SampleType::ExceptionSamples
            | SampleType::LockAcquire
            | SampleType::LockRelease
            | SampleType::AllocSamples
            | SampleType::HeapLiveSamples
            | SampleType::GpuSamples
            | SampleType::GpuAllocSamples
            | SampleType::GpuFlops
            | SampleType::GpuFlopsSamples => "count",
        }
    }

    /// Position of this type's value in `Sample.value` (0..19).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The type whose pprof name is `name`, if any.
    pub fn from_name(name: &str) -> Option<SampleType> {
        SampleType::ALL.into_iter().find(|t| t.name() == name)
    }
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.name(), self.unit())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_names_and_units_match_reference() {
        // ddtrace-profiler.md §1.5, verbatim.
        let expected = "cpu-time/nanoseconds, cpu-samples/count, wall-time/nanoseconds, \
            wall-samples/count, exception-samples/count, lock-acquire-wait/nanoseconds, \
            lock-acquire/count, lock-release-hold/nanoseconds, lock-release/count, \
            alloc-space/bytes, alloc-samples/count, heap-space/bytes, \
            heap-live-samples/count, gpu-time/nanoseconds, gpu-samples/count, \
            gpu-space/bytes, gpu-alloc-samples/count, gpu-flops/count, \
            gpu-flops-samples/count";
        let got: Vec<String> = SampleType::ALL.iter().map(|t| t.to_string()).collect();
        assert_eq!(got.join(", "), expected);
        for (i, t) in SampleType::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
            assert_eq!(SampleType::from_name(t.name()), Some(*t));
        }
        assert_eq!(SampleType::from_name("nope"), None);
    }
}
