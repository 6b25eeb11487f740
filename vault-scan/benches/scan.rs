//! Criterion bench over a fixed synthetic corpus: source-like text with a few planted fake
//! tokens, so numbers are comparable between commits.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vault_scan::{scan_bytes, ScanOptions, Scanner};

fn corpus() -> Vec<u8> {
    let lines = [
        "def handle(request, *args, **kwargs):\n",
        "    api_url = settings.API_URL + '/v1/items'  # fetch the items\n",
        "    password = request.POST.get('password')\n",
        "    for index, item in enumerate(self.items): total += item.cost\n",
        "    return HttpResponse(json.dumps({'status': 'ok', 'count': total}))\n",
        "# Access the database via the secret manager, never inline keys.\n",
    ];
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < 8 << 20 {
        out.extend_from_slice(lines[i % lines.len()].as_bytes());
        if i % 5000 == 0 {
            out.extend_from_slice(b"GH_TOKEN=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\n");
        }
        i += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let scanner = Scanner::builtin().unwrap();
    let data = corpus();
    let opts = ScanOptions::default();
    let mut g = c.benchmark_group("scan");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(10);
    g.bench_function("source-8MiB", |b| {
        b.iter(|| {
            scan_bytes(&scanner, None, "corpus.py", &data, &opts)
                .findings
                .len()
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
