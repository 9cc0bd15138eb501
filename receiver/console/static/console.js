// zmy-responder console: keeps the page live without a reload. Every few seconds it fetches the
// page again and swaps each element marked data-live, except one the user is typing in. Without
// JavaScript the page is complete as served; reload it for the latest.
(function () {
  'use strict';
  var src = document.body.getAttribute('data-refresh');
  var status = document.getElementById('live');
  if (!src || !window.fetch || !window.DOMParser) {
    return;
  }
  var every = 2000;
  var failures = 0;

  function say(text, failing) {
    if (status) {
      status.textContent = text;
      status.className = failing ? 'live error' : 'live';
    }
  }

  // busy: the user has focus in, or has typed into, a field of el.
  function busy(el) {
    if (document.activeElement && document.activeElement !== document.body && el.contains(document.activeElement)) {
      return true;
    }
    var fields = el.querySelectorAll('input, textarea, select');
    for (var i = 0; i < fields.length; i++) {
      if (fields[i].type !== 'hidden' && fields[i].value !== fields[i].defaultValue) {
        return true;
      }
    }
    return false;
  }

  function apply(html) {
    var fresh = new DOMParser().parseFromString(html, 'text/html');
    fresh.querySelectorAll('[data-live]').forEach(function (el) {
      var cur = document.querySelector('[data-live="' + el.getAttribute('data-live') + '"]');
      if (cur && cur.innerHTML !== el.innerHTML && !busy(cur)) {
        cur.innerHTML = el.innerHTML;
      }
    });
    if (fresh.title) {
      document.title = fresh.title;
    }
  }

  function poll() {
    if (document.visibilityState === 'hidden') {
      setTimeout(poll, every);
      return;
    }
    fetch(src, { credentials: 'same-origin', cache: 'no-store', headers: { 'Accept': 'text/html' } })
      .then(function (r) {
        if (!r.ok) {
          throw new Error('HTTP ' + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        apply(html);
        failures = 0;
        say('live · updated ' + new Date().toLocaleTimeString(), false);
      }, function (err) {
        failures++;
        say('live updates failing (' + err.message + '), retrying', true);
      })
      .then(function () {
        setTimeout(poll, every * Math.min(1 + failures, 5));
      });
  }

  // The URL after a form's result is the page's own, so a reload does not post again.
  if (window.location.pathname !== src.split('?')[0]) {
    window.history.replaceState(null, '', src);
  }
  say('live', false);
  setTimeout(poll, every);
})();
