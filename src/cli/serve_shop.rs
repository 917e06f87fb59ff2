//! `scraipe serve-demo --shop`: the demo shop until Ctrl-C, with its URL list and rules
//! written where the monitor can read them.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use scraipe::demo::shop::{Shop, ShopOptions, ShopServer, ShopServerOptions};
use scraipe::util::format_duration;

use super::summary::group;
use super::{CliError, ServeDemoArgs};

pub fn run(args: ServeDemoArgs) -> Result<(), CliError> {
    let hosts = args.hosts as usize;
    let per_host = args.products_per_host as usize;
    let products = hosts as u64 * per_host as u64;
    if products > 10_000_000 {
        return Err(CliError {
            code: 2,
            message: format!(
                "--hosts {hosts} × --products-per-host {per_host} is {} products; at most 10,000,000",
                group(products as usize)
            ),
        });
    }
    let shop = Shop::new(ShopOptions {
        hosts,
        products_per_host: per_host,
        seed: args.seed,
        change_share: args.change_share,
        change_every: args.change_every,
    });
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, args.port));
    let options = ShopServerOptions {
        latency: args.latency,
        ..Default::default()
    };
    let threads = args.threads as usize;
    let stats = scraipe::demo::serve_shop_forever(addr, shop, options, threads, |server| {
        announce(server, &args, threads)
    })
    .map_err(|e| format!("could not serve the demo shop on port {}: {e}", args.port))?;
    println!(
        "stopped: {} requests ({} answered 304, {} for robots.txt, {} for disallowed paths); at most {} at once on one host",
        group(stats.requests as usize),
        group(stats.not_modified as usize),
        group(stats.robots_requests as usize),
        group(stats.disallowed_requests as usize),
        stats.max_in_flight_per_host
    );
    Ok(())
}

/// Prints where the shop is and writes the URL and rules files.
fn announce(server: &ShopServer, args: &ServeDemoArgs, threads: usize) -> io::Result<()> {
    let shop = server.shop();
    let o = shop.options();
    let port = server.port();
    let products = o.hosts * o.products_per_host;
    println!(
        "serving the demo shop: {} hosts × {} product page(s) = {} URLs (seed {}) on {} ({} worker thread(s))",
        group(o.hosts),
        o.products_per_host,
        group(products),
        o.seed,
        server.local_addr(),
        threads
    );
    println!(
        "hosts shop-0.localhost … shop-{}.localhost, e.g. http://shop-0.localhost:{port}/product/0",
        o.hosts - 1
    );
    if o.change_every.is_zero() || o.change_share == 0.0 {
        println!("prices never change");
    } else {
        println!(
            "every {} about {:.0} % of the products change price and/or availability",
            format_duration(o.change_every),
            o.change_share * 100.0
        );
    }
    match &args.urls_out {
        Some(path) => {
            write_file(path, |out| {
                for url in shop.urls(port) {
                    writeln!(out, "{url}")?;
                }
                Ok(())
            })?;
            println!("wrote {} URLs to {}", group(products), path.display());
        }
        None => println!("(write every URL to a file with --urls-out FILE)"),
    }
    if let Some(path) = &args.rules_out {
        write_file(path, |out| out.write_all(shop.rules_toml().as_bytes()))?;
        println!("wrote the extraction rules to {}", path.display());
    }
    println!("press Ctrl-C to stop");
    Ok(())
}

fn write_file(
    path: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> io::Result<()>,
) -> io::Result<()> {
    let context = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
    let mut out = BufWriter::new(File::create(path).map_err(context)?);
    fill(&mut out).map_err(context)?;
    out.flush().map_err(context)
}
