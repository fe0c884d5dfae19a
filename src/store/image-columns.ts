/** The samples table's columns that say where the image is and what decoding found (null before a decode). */
export interface ImageColumns {
  image_ref: string;
  width: number | null;
  height: number | null;
  format: string | null;
  byte_length: number | null;
  sha256: string | null;
  orientation: number | null;
}
