// Each panel gets about one point per pixel of its width: tell the server this window's width.
// A cookie, set before the page asks for its layout, so that first request already carries it.
document.cookie = "shipboard_width=" + window.innerWidth + "; path=/; max-age=31536000; samesite=lax";
