//! `#[both_stores]` on an `async fn name() { … }` test makes a module
//! `name` with two tests, `name::embedded` and `name::dynamodb`, that run
//! the same body with `hub_tests::Backend` set accordingly: every
//! `TestServer` the body starts is then `hub serve` over the embedded store,
//! or over DynamoDB Local and moto's SQS with the two pollers. The body's
//! tokens are moved as they are, so errors and panics point at its lines.
//! (No dependencies: the item is taken apart by hand.)

use proc_macro::{Delimiter, Group, Ident, Span, TokenStream, TokenTree};

fn parse(code: &str) -> TokenStream {
    code.parse().expect("valid tokens")
}

fn error(message: &str) -> TokenStream {
    parse(&format!("compile_error!({message:?});"))
}

#[proc_macro_attribute]
pub fn both_stores(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return error("#[both_stores] takes no arguments");
    }
    let tokens: Vec<TokenTree> = item.into_iter().collect();
    // Outer attributes (doc comments) go on the module.
    let mut i = 0;
    let mut attrs = TokenStream::new();
    while i + 1 < tokens.len() {
        match (&tokens[i], &tokens[i + 1]) {
            (TokenTree::Punct(p), TokenTree::Group(g))
                if p.as_char() == '#' && g.delimiter() == Delimiter::Bracket =>
            {
                attrs.extend([tokens[i].clone(), tokens[i + 1].clone()]);
                i += 2;
            }
            _ => break,
        }
    }
    let rest = &tokens[i..];
    let is = |t: Option<&TokenTree>, word: &str| matches!(t, Some(TokenTree::Ident(id)) if id.to_string() == word);
    let (
        Some(TokenTree::Ident(name)),
        Some(TokenTree::Group(params)),
        Some(TokenTree::Group(body)),
    ) = (rest.get(2), rest.get(3), rest.last())
    else {
        return error("#[both_stores] expects `async fn name() { … }`");
    };
    if !is(rest.first(), "async")
        || !is(rest.get(1), "fn")
        || !params.stream().is_empty()
        || body.delimiter() != Delimiter::Brace
        || rest.len() != 5
    {
        return error("#[both_stores] expects `async fn name() { … }`");
    }
    let mut module = parse("#[allow(unused_imports)] use super::*;");
    for (test, backend) in [("embedded", "Embedded"), ("dynamodb", "DynamoDb")] {
        module.extend(parse(
            "#[::tokio::test(flavor = \"multi_thread\", worker_threads = 2)] async fn",
        ));
        module.extend([TokenTree::Ident(Ident::new(test, name.span()))]);
        module.extend(parse("()"));
        let mut inner = parse(&format!("::hub_tests::Backend::{backend}.scope"));
        let mut future = parse("async move");
        future.extend([TokenTree::Group(body.clone())]);
        inner.extend([TokenTree::Group(Group::new(Delimiter::Parenthesis, future))]);
        inner.extend(parse(".await"));
        module.extend([TokenTree::Group(Group::new(Delimiter::Brace, inner))]);
    }
    let mut out = attrs;
    out.extend([
        TokenTree::Ident(Ident::new("mod", Span::call_site())),
        TokenTree::Ident(name.clone()),
        TokenTree::Group(Group::new(Delimiter::Brace, module)),
    ]);
    out
}
