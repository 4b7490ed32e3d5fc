"""Medical imaging: cohorts (PNG/JPEG, DICOM, MedMNIST), pretrained CNN backbones, transfer
learning, hybrid probes on CNN embeddings, Grad-CAM, and image studies as study specs
(``medpredict image-study`` writes the spec; the study runner runs it).

Examples
--------
>>> from medpredict.imaging import ImageTransferClassifier, PretrainedImageEncoder
>>> ImageTransferClassifier().strategy, PretrainedImageEncoder().backbone
('full', 'efficientnet_lite0')
"""

from medpredict.imaging.backbones import build_backbone, load_weights, read_state_dict
from medpredict.imaging.cohort import (
    ImageCohort,
    ImageDataError,
    load_image_folder,
    load_medmnist,
    read_dicom,
    read_image,
)
from medpredict.imaging.encoder import PretrainedImageEncoder
from medpredict.imaging.gradcam import grad_cam, gradcam_section
from medpredict.imaging.loader import ImageLoader
from medpredict.imaging.study_spec import split_table, write_image_study
from medpredict.imaging.transfer import ImageTransferClassifier

__all__ = [
    "ImageCohort",
    "ImageDataError",
    "ImageLoader",
    "ImageTransferClassifier",
    "PretrainedImageEncoder",
    "build_backbone",
    "grad_cam",
    "gradcam_section",
    "load_image_folder",
    "load_medmnist",
    "load_weights",
    "read_dicom",
    "read_image",
    "read_state_dict",
    "split_table",
    "write_image_study",
]
