"""`cnnkit serve`: the playground, a page that recomputes the summary and the drawing as a
spec is typed, served with the standard library's HTTP server on 127.0.0.1.

Modules:
    api     what each API route computes, from request text to response bytes (no HTTP)
    server  routes, limits and the threading server
    static  the page: index.html, app.js, style.css (hand-written, no build step)
"""
