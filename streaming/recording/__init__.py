"""Recordings from the media stream: what ACS sent, kept, on the call's timeline.

With ``CALLSITE_RECORDING=on`` every audio stream of a call (each participant's, with unmixed
audio; the one mixed stream otherwise) is recorded as it is received:

- ``recorder``: on the event loop, each stream's frames gather into a chunk of
  ``CALLSITE_RECORDING_CHUNK_SECONDS``; a gap in the audio, a format change or a full chunk
  seals it, and the sealed chunk is written off the loop (``store.save_chunk``), so a worker
  that restarts mid-call keeps everything but its last chunk and the resumed stream
  continues the same track;
- ``store``: chunks are FLAC files in ``STORAGES["recordings"]`` with a row each; when a
  stream closes they are assembled into one FLAC per track, from the call's first audio, gaps
  as silence (so a time in the transcript is the same time in the file), and a mixed one
  for playback. Spans redaction masked are silenced in the chunks and in every rendition;
- ``codec``: FLAC in and out through libsndfile (``soundfile``). FLAC is lossless, so a
  stored sample is the sample ACS sent (tests compare them), and it halves 16-bit speech.
"""
