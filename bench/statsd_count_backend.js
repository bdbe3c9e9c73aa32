// Etsy statsd backend that keeps the total of metrics received since start, for the benchmarks.
// `echo stats | nc 127.0.0.1 MGMT` then shows `benchcount.metrics_received: N`.
'use strict';

const KEY = 'statsd.metrics_received';
let flushed = 0;
let live = null; // statsd's own counters object: it holds what arrived since the last flush

exports.init = function init(startupTime, config, events) {
  events.on('flush', function onFlush(timestamp, metrics) {
    // Runs before statsd zeroes its counters for the next interval.
    live = metrics.counters;
    flushed += metrics.counters[KEY] || 0;
  });
  events.on('status', function onStatus(write) {
    const pending = live ? live[KEY] || 0 : 0;
    write(null, 'benchcount', 'metrics_received', flushed + pending);
  });
  return true;
};
