//! gateway-media: raw frames in, network-ready segments out (encoders, MPEG-TS muxer, segmenter).
//! Synchronous and CPU-bound; knows nothing of sockets or trickle.
