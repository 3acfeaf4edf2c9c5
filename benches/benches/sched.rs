//! The cost of one credit-scheduler decision (`Credit::schedule`: burn the current unit's
//! credit, re-queue it, pick the head of the queue, look at the other pCPUs' queues when it is
//! OVER) with 10, 100 and 1000 runnable vCPUs, on 1 and on 4 pCPUs.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use hv::sched::Credit;

fn decision(c: &mut Criterion) {
    let mut g = c.benchmark_group("credit_decision");
    for pcpus in [1usize, 4] {
        for n in [10u16, 100, 1000] {
            let mut s = Credit::new(pcpus);
            for d in 0..n {
                // Mixed weights, so the queue holds UNDER and OVER units after accounting.
                s.add_domain(d + 1, 1, 128 << (d % 3), 0);
            }
            for p in 0..pcpus {
                s.schedule(p, |_| true);
            }
            s.acct();
            let mut now = 0;
            g.bench_with_input(BenchmarkId::new(format!("{pcpus}pcpu"), n), &n, |b, _| {
                b.iter(|| {
                    now += 1_000_000;
                    s.pcpus[0].now = now;
                    std::hint::black_box(s.schedule(0, |_| true))
                })
            });
        }
    }
    g.finish();
}

criterion_group!(benches, decision);
criterion_main!(benches);
