//! The bundled browser client: embedded into release builds, read from `frontend/` on disk in
//! debug builds, and always served with a Content-Security-Policy.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "frontend/"]
struct Assets;

/// Scripts, styles and connections from this origin only; no inline script, no framing.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self' ws: wss:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

/// GET, and HEAD answered like GET without its body (actix sends no body for HEAD).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(asset))
        .route("/", web::head().to(asset))
        .route("/{path:.*}", web::get().to(asset))
        .route("/{path:.*}", web::head().to(asset));
}

async fn asset(req: HttpRequest) -> HttpResponse {
    let path = req
        .match_info()
        .get("path")
        .unwrap_or("")
        .trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    // Unknown paths without an extension are client-side routes: answer with the app shell.
    let file = Assets::get(path).map(|f| (path, f)).or_else(|| {
        if path.contains('.') {
            None
        } else {
            Assets::get("index.html").map(|f| ("index.html", f))
        }
    });
    match file {
        Some((name, content)) => {
            let mime = mime_guess::from_path(name).first_or_octet_stream();
            HttpResponse::Ok()
                .content_type(mime.as_ref())
                .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
                .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
                .insert_header((header::REFERRER_POLICY, "no-referrer"))
                .insert_header((header::CACHE_CONTROL, "no-cache"))
                .body(content.data.into_owned())
        }
        None => actix_web::ResponseError::error_response(&crate::error::Error::NotFound(
            "no such file".into(),
        )),
    }
}
