use std::hint::black_box;
use std::time::Instant;
fn main() {
    let html = std::fs::read_to_string("/tmp/mx/page.html").unwrap();
    let n = 2000;
    for _ in 0..2 {
        let t = Instant::now();
        for _ in 0..n {
            let mut e = html5gum::DefaultEmitter::default();
            e.naively_switch_states(true);
            let mut c = 0usize;
            for tok in html5gum::Tokenizer::new_with_emitter(black_box(&html), e) {
                if let Ok(html5gum::Token::StartTag(_)) = tok {
                    c += 1;
                }
            }
            black_box(c);
        }
        println!("html5gum tokens {} ns", t.elapsed().as_nanos() / n as u128);
        let t = Instant::now();
        for _ in 0..n {
            black_box(scraper::Html::parse_document(black_box(&html)));
        }
        println!("html5ever dom {} ns", t.elapsed().as_nanos() / n as u128);
        let t = Instant::now();
        for _ in 0..n {
            black_box(scraipe::offer::extract_offer(
                black_box(&html),
                "u",
                &scraipe::offer::Rules::default(),
            ));
        }
        println!("extract {} ns", t.elapsed().as_nanos() / n as u128);
        let t = Instant::now();
        for _ in 0..n {
            black_box(scraipe::defaults::html_to_text(black_box(&html)));
        }
        println!("html_to_text {} ns", t.elapsed().as_nanos() / n as u128);
    }
}
