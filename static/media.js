// Audio: one RTCPeerConnection per participant, negotiated by the client.
//
// * First offer: K (joined.media.audio_slots) recvonly audio transceivers; each remote
//   track is one slot of the room's mix and plays in its own <audio> element.
// * On stage: ONE sendonly transceiver with the microphone (addTransceiver, never
//   addTrack, which could reuse a slot), then a re-offer on the same connection.
// * The server answers with all its candidates; ours are trickled with rtc_candidate.
// * rtc_closed, or a connection that fails, means: a new peer connection, a new offer.
// * Muted: the local track is disabled too (the server drops muted audio anyway).

const AUDIO_CONSTRAINTS = { echoCancellation: true, noiseSuppression: true, autoGainControl: true };

/** Audio output that works under autoplay rules (iOS Safari included): an AudioContext
 * and the <audio> elements are unlocked from inside a user gesture. */
class AudioOutput {
  constructor() {
    this.elements = [];
    this.context = null;
    this.unlocked = false;
    this.blocked = false;
    this.onchange = () => {};
    this.host = document.createElement("div");
    this.host.hidden = true;
    document.body.append(this.host);
  }

  element(i) {
    while (this.elements.length <= i) {
      const el = document.createElement("audio");
      el.autoplay = true;
      el.setAttribute("playsinline", "");
      this.host.append(el);
      this.elements.push(el);
    }
    return this.elements[i];
  }

  /** Call from a click or key handler. */
  unlock() {
    try {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx && !this.context) this.context = new Ctx();
      if (this.context && this.context.state !== "running") this.context.resume().catch(() => {});
      if (this.context) {
        // A silent buffer played in the gesture unlocks output on iOS.
        const buffer = this.context.createBuffer(1, 1, 22050);
        const source = this.context.createBufferSource();
        source.buffer = buffer;
        source.connect(this.context.destination);
        source.start(0);
      }
    } catch {
      // No Web Audio: the <audio> elements still play.
    }
    for (let i = 0; i < 4; i++) this.element(i);
    for (const el of this.elements) {
      const p = el.play();
      if (p) p.catch(() => {});
    }
    this.unlocked = true;
    if (this.blocked) {
      this.blocked = false;
      this.onchange();
    }
  }

  play(i, track) {
    const el = this.element(i);
    el.srcObject = new MediaStream([track]);
    const p = el.play();
    if (p) {
      p.then(
        () => {
          if (this.blocked) {
            this.blocked = false;
            this.onchange();
          }
        },
        (err) => {
          if (err && err.name === "NotAllowedError") {
            this.blocked = true;
            this.onchange();
          }
        },
      );
    }
  }

  stopAll() {
    for (const el of this.elements) el.srcObject = null;
  }
}

export const audioOutput = new AudioOutput();

export class Media extends EventTarget {
  constructor(client) {
    super();
    this.client = client;
    this.pc = null;
    this.micTrack = null;
    this.micTransceiver = null;
    this.wantMic = false;
    this.muted = true;
    this.state = "off"; // off | connecting | connected | reconnecting | failed
    this.micError = null; // denied | missing | insecure | other
    this._chain = Promise.resolve();
    this._restarts = 0;
    this._restartTimer = null;
    this._disconnectTimer = null;
    this._closed = false;
    this._onRtcClosed = () => this._scheduleRestart();
    client.addEventListener("rtc_closed", this._onRtcClosed);
  }

  _set(state) {
    if (this.state === state) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("change"));
  }

  /** A new peer connection (after join, a reconnect, rtc_closed or a failure). */
  start() {
    if (this._closed) return;
    clearTimeout(this._restartTimer);
    this._teardownPc();
    const config = this.client.media || { audio_slots: 3, ice_servers: [] };
    const iceServers = (config.ice_servers || []).map((s) => {
      const server = { urls: s.urls };
      if (s.username) server.username = s.username;
      if (s.credential) server.credential = s.credential;
      return server;
    });
    const pc = new RTCPeerConnection({ iceServers, bundlePolicy: "max-bundle" });
    this.pc = pc;
    const slots = config.audio_slots;
    for (let i = 0; i < slots; i++) pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (e) => {
      if (pc !== this.pc) return;
      const index = pc.getTransceivers().indexOf(e.transceiver);
      if (index >= 0 && index < slots) audioOutput.play(index, e.track);
    };
    this._offerSent = false;
    this._earlyCandidates = [];
    pc.onicecandidate = (e) => {
      if (pc !== this.pc) return;
      const c = e.candidate;
      const msg = {
        type: "rtc_candidate",
        candidate: c ? c.candidate : "",
        sdp_mid: c?.sdpMid ?? undefined,
        sdp_mline_index: c?.sdpMLineIndex ?? undefined,
      };
      if (this._offerSent) this.client.send(msg);
      else this._earlyCandidates.push(msg);
    };
    pc.onconnectionstatechange = () => {
      if (pc !== this.pc) return;
      const s = pc.connectionState;
      clearTimeout(this._disconnectTimer);
      if (s === "connected") {
        this._restarts = 0;
        this._set("connected");
      } else if (s === "failed") {
        this._scheduleRestart();
      } else if (s === "disconnected") {
        this._set("reconnecting");
        // ICE often recovers by itself; give it a few seconds first.
        this._disconnectTimer = setTimeout(() => {
          if (pc === this.pc && pc.connectionState !== "connected") this._scheduleRestart();
        }, 4000);
      }
    };
    this._set(this._restarts ? "reconnecting" : "connecting");
    if (this.micTrack && this.wantMic) {
      this.micTransceiver = pc.addTransceiver(this.micTrack, { direction: "sendonly" });
    }
    this._negotiate(pc, true);
  }

  _negotiate(pc, first = false) {
    this._chain = this._chain
      .then(async () => {
        if (pc !== this.pc || this._closed) return;
        await pc.setLocalDescription(await pc.createOffer());
        const request = this.client.request({ type: "rtc_offer", sdp: pc.localDescription.sdp }, 30_000);
        if (first) {
          this._offerSent = true;
          for (const msg of this._earlyCandidates) this.client.send(msg);
          this._earlyCandidates = [];
        }
        const answer = await request;
        if (pc !== this.pc || pc.signalingState === "closed") return;
        await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
      })
      .catch((err) => {
        if (pc !== this.pc || this._closed) return;
        if (err && err.code === "disconnected") return; // the rejoin starts a new pc
        this.dispatchEvent(new CustomEvent("error", { detail: err }));
        this._scheduleRestart();
      });
    return this._chain;
  }

  _scheduleRestart() {
    if (this._closed) return;
    clearTimeout(this._restartTimer);
    this._set("reconnecting");
    const delay = Math.min(10_000, 500 * 2 ** this._restarts) * (0.5 + Math.random() / 2);
    this._restarts += 1;
    this._restartTimer = setTimeout(() => {
      if (this.client.phase === "live") this.start();
    }, delay);
  }

  /** On stage: open the microphone and send it; off stage: stop sending it. */
  async setOnStage(onStage) {
    this.wantMic = onStage;
    if (!onStage) {
      if (this.micTrack) {
        this.micTrack.stop();
        this.micTrack = null;
      }
      if (this.micTransceiver && this.pc && this.pc.signalingState !== "closed") {
        await this.micTransceiver.sender.replaceTrack(null).catch(() => {});
      }
      return;
    }
    if (!this.micTrack) {
      const track = await this._openMic();
      if (!track || !this.wantMic) {
        track?.stop();
        return;
      }
      this.micTrack = track;
    }
    this.micTrack.enabled = !this.muted;
    const pc = this.pc;
    if (!pc || pc.signalingState === "closed") return; // start() adds it
    const existing = this.micTransceiver && pc.getTransceivers().includes(this.micTransceiver);
    if (existing) {
      await this.micTransceiver.sender.replaceTrack(this.micTrack).catch(() => {});
      if (this.micTransceiver.direction !== "sendonly") {
        this.micTransceiver.direction = "sendonly";
        await this._negotiate(pc);
      }
    } else {
      this.micTransceiver = pc.addTransceiver(this.micTrack, { direction: "sendonly" });
      await this._negotiate(pc);
    }
  }

  async _openMic() {
    if (!window.isSecureContext || !navigator.mediaDevices?.getUserMedia) {
      this._micFailed("insecure");
      return null;
    }
    try {
      const stream = await navigator.mediaDevices.getUserMedia({ audio: AUDIO_CONSTRAINTS });
      const track = stream.getAudioTracks()[0];
      if (!track) {
        this._micFailed("missing");
        return null;
      }
      this.micError = null;
      track.addEventListener("ended", () => {
        if (this.micTrack === track) {
          this.micTrack = null;
          this._micFailed("missing");
        }
      });
      this.dispatchEvent(new CustomEvent("change"));
      return track;
    } catch (err) {
      const name = err?.name;
      if (name === "NotAllowedError" || name === "SecurityError") this._micFailed("denied");
      else if (name === "NotFoundError" || name === "OverconstrainedError") this._micFailed("missing");
      else if (name === "NotReadableError") this._micFailed("busy");
      else this._micFailed("other");
      return null;
    }
  }

  _micFailed(kind) {
    this.micError = kind;
    this.dispatchEvent(new CustomEvent("change"));
  }

  /** Mirror the room's mute state on the local track. */
  setMuted(muted) {
    this.muted = muted;
    if (this.micTrack) this.micTrack.enabled = !muted;
  }

  /** Totals over every inbound audio stream (for the page's tests and diagnostics). */
  async inboundStats() {
    const out = { packets: 0, level: 0, streams: 0 };
    if (!this.pc) return out;
    const stats = await this.pc.getStats();
    stats.forEach((r) => {
      if (r.type === "inbound-rtp" && r.kind === "audio") {
        out.streams += 1;
        out.packets += r.packetsReceived || 0;
        out.level = Math.max(out.level, r.audioLevel || 0);
      }
    });
    return out;
  }

  _teardownPc() {
    clearTimeout(this._disconnectTimer);
    if (this.pc) {
      const pc = this.pc;
      this.pc = null;
      this.micTransceiver = null;
      try {
        pc.close();
      } catch {
        // already closed
      }
    }
  }

  close() {
    this._closed = true;
    clearTimeout(this._restartTimer);
    this.client.removeEventListener("rtc_closed", this._onRtcClosed);
    this._teardownPc();
    if (this.micTrack) this.micTrack.stop();
    this.micTrack = null;
    audioOutput.stopAll();
    this._set("off");
  }
}
