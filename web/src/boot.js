// Loads the page's bundle, retrying a load the browser aborted (Chromium
// drops in-flight requests when a network interface changes, which happens
// whenever Docker starts a sandbox on this machine).
(function load(attempt) {
  const script = document.createElement("script");
  script.type = "module";
  script.src = attempt === 0 ? "/app.js" : `/app.js?retry=${attempt}`;
  script.onerror = () => {
    script.remove();
    if (attempt < 8) setTimeout(() => load(attempt + 1), 250 * (attempt + 1));
    else document.body.textContent = "The page could not be loaded. Check the connection and reload.";
  };
  document.head.append(script);
})(0);
