(function () {
  var key = "cnn-tuner-scroll:" + location.pathname;
  var y = sessionStorage.getItem(key);
  if (y !== null) { window.scrollTo(0, parseInt(y, 10)); }
  window.addEventListener("beforeunload", function () {
    sessionStorage.setItem(key, String(window.scrollY));
  });
})();
